"""The admin's lists and buttons in a real browser: live rows, widths, the object tools (issue 16)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from .support.browser import ARTIFACTS, changelist_overflow, chromium, login
from .support.objects import make_report, make_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: The cells of a row of the task list, read in the browser.
ROW_CELLS = """(name) => {
    const row = [...document.querySelectorAll('#result_list tbody tr')]
        .find(tr => tr.querySelector('th').textContent.includes(name));
    const cell = (column) => row.querySelector('.field-' + column);
    const box = cell('status_badge').getBoundingClientRect();
    return {
        status: cell('status_badge').querySelector('.tm-badge').textContent.trim(),
        progress: !!cell('status_badge').querySelector('[role=progressbar]'),
        result: cell('last_result_badge').textContent.trim(),
        counts: cell('counts').textContent.trim(),
        last: cell('last_run').textContent.trim(),
        next: cell('next_run').textContent.trim(),
        left: box.left, width: box.width,
    };
}"""


def row_when(page, name, condition):
    """Wait until the row of task ``name`` satisfies the JS ``condition`` on its cells; return them."""
    return page.wait_for_function(
        "(name) => { const c = (%s)(name); return (%s) ? c : false; }" % (ROW_CELLS, condition), arg=name
    ).json_value()


def test_task_list_rows_refresh_every_changing_cell(browser, static_server, superuser, commands):
    """Badges, counts, last and next execution refresh without a reload; the status column keeps its width."""
    from playwright.sync_api import expect

    base = static_server.url
    long_ago = timezone.now() - timedelta(days=2)
    # A one-shot run a few seconds ahead: the list sees it scheduled (with its
    # next execution), running (with a progress bar), then idle with none.
    task = make_task(
        commands,
        "Refresh me",
        command="tm_progress",
        arguments="--steps 6, --tick 0.5, --warn-at 2",
        last_result="OK",
        last_datetime=long_ago,
        last_duration=timedelta(hours=1),
        scheduling=timezone.now() + timedelta(seconds=12),
    )
    make_task(commands, "Zz neighbour", last_result="OK", last_datetime=long_ago)
    task_page = browser.new_page()
    login(task_page, base, "admin")
    task_page.goto(base + "/admin/taskmanager/task/%d/change/" % task.pk)
    task_page.get_by_role("button", name="Start").click()
    expect(task_page.locator(".messagelist")).to_be_visible()
    field = {
        name: task_page.locator(".field-%s .readonly" % name)
        for name in ("next_datetime_display", "warnings")
    }
    expect(field["next_datetime_display"]).not_to_have_text("-")
    before_page_last = task_page.locator(".field-last_datetime_display .readonly").inner_text()
    page = browser.new_page()
    page.goto(base + "/admin/taskmanager/task/")
    scheduled = row_when(page, "Refresh me", "c.status === 'Scheduled'")
    assert scheduled["next"] != "-" and scheduled["counts"] == "0 / 0", scheduled
    before_last = scheduled["last"]
    running = row_when(page, "Refresh me", "c.status === 'Started' && c.progress")
    page.screenshot(path=str(ARTIFACTS / "task_list_live_running.png"))
    done = row_when(page, "Refresh me", "c.status === 'Idle' && c.result === 'Warnings'")
    page.screenshot(path=str(ARTIFACTS / "task_list_live_done.png"))
    # Every changing cell is the finished run's, without a reload.
    assert done["counts"] == "0 / 1", done
    assert done["last"] != before_last and "1 h" not in done["last"], (before_last, done)
    assert done["next"] == "-", done  # a finished one-shot task has no next execution
    # The task page, open all along, shows the run's end in its "Last execution" fields too.
    expect(task_page.locator(".field-live_status .tm-badge")).to_have_text("Idle")
    expect(field["warnings"]).to_have_text("1")
    expect(field["next_datetime_display"]).to_have_text("-")
    expect(task_page.locator(".field-last_datetime_display .readonly")).not_to_have_text(before_page_last)
    expect(task_page.locator(".field-last_duration_display .readonly")).not_to_have_text("1 h 0 min")
    task.refresh_from_db()
    assert (task.status, task.warnings, task.next_datetime) == ("IDLE", 1, None)
    # The status column kept its place and width through the three states.
    for state in (running, done):
        assert abs(state["left"] - scheduled["left"]) <= 1, (scheduled, state)
        assert abs(state["width"] - scheduled["width"]) <= 1, (scheduled, state)


#: The running row's height, its status cell's, and the text line height there, read in the browser.
ROW_BOX = """(name) => {
    const row = [...document.querySelectorAll('#result_list tbody tr')]
        .find(tr => tr.querySelector('th').textContent.includes(name));
    const live = row.querySelector('.field-status_badge .tm-live');
    const bar = live.querySelector('[role=progressbar]');
    return {
        row: row.getBoundingClientRect().height,
        live: live.getBoundingClientRect().height,
        line: parseFloat(getComputedStyle(row.querySelector('.field-status_badge')).lineHeight),
        percent: bar ? bar.getAttribute('aria-valuenow') : null,
    };
}"""


def test_a_running_row_keeps_its_height_as_its_progress_changes(browser, static_server, superuser, commands):
    """Issue 16 walk-through: the progress text wrapped onto ~5 lines in the status column, so the
    row grew and the rows below jumped. One short line in the cell; the rest in the tooltip."""
    task = make_task(commands, "Busy", command="tm_progress", status="STARTED")
    make_task(commands, "Zz below")
    run = make_report(task, running=True, progress_done=30, progress_total=100, progress_at=timezone.now())
    page = browser.new_page()
    login(page, static_server.url, "admin")
    page.goto(static_server.url + "/admin/taskmanager/task/")
    page.locator(".field-status_badge [role=progressbar]").wait_for()
    before = page.evaluate(ROW_BOX, "Busy")
    # A long message and a new percentage: the live refresh shows them in place.
    message = "importing customer batch 17 of 40 from the nightly export of the shop's orders"
    type(run).objects.filter(pk=run.pk).update(
        progress_done=81, progress_message=message, progress_at=timezone.now()
    )
    page.wait_for_function("(name) => (%s)(name).percent === '81'" % ROW_BOX, arg="Busy")
    after = page.evaluate(ROW_BOX, "Busy")
    page.screenshot(path=str(ARTIFACTS / "task_list_running_row.png"))
    assert abs(after["row"] - before["row"]) <= 1, (before, after)
    assert after["live"] <= 3 * after["line"], after
    # The message is not lost: the cell's tooltip carries it.
    title = page.locator(".field-status_badge .tm-progress").get_attribute("title")
    assert message in title and "81%" in title, title
    short = page.locator(".field-status_badge .tm-progress-short")
    assert short.inner_text().startswith("81%"), short.inner_text()


#: Reports of every trigger and kind of end, on tasks with long names.
REPORT_ROWS = [
    ("Refresh the cache every 2 minutes", "OK", "schedule", "completed"),
    ("Rebuild the search index of the shop", "FAILED", "start", "stopped by user administrator"),
    ("Send the newsletter", "FAILED", "run now", "timed out after 3600 seconds"),
    ("Import customers", "FAILED", "recovery", "interrupted"),
    ("Collect commands", "WARNINGS", "start", "exit code 1"),
]


def test_report_list_fits_with_the_sidebar_open(playwright_api, static_server, superuser, commands):
    """At 1400 px with the navigation sidebar open, every column of the reports list shows, no scroll."""
    now = timezone.now()
    for hours, (name, result, trigger, reason) in enumerate(REPORT_ROWS):
        task = make_task(commands, name, command="tm_progress")
        make_report(
            task,
            result=result,
            trigger=trigger,
            end_reason=reason,
            user_name="administrator",
            invocation_datetime=now - timedelta(hours=hours, minutes=5),
            finished_datetime=now - timedelta(hours=hours),
        )
    with chromium(playwright_api, width=1400) as context:
        page = context.new_page()
        login(page, static_server.url, "admin")
        page.goto(static_server.url + "/admin/taskmanager/report/")
        assert page.locator("#nav-sidebar").is_visible()  # the admin's default: open
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report_list_1400.png"))
        sizes = changelist_overflow(page)
        # No column hidden behind the horizontal scroll of the results.
        assert sizes["scroll"] <= sizes["client"] and not sizes["outside"], sizes
        assert page.locator("#result_list th.column-trigger").is_visible()
        assert page.locator("#result_list td.field-trigger").first.inner_text() == "schedule"


#: The geometry and colours of the task page's object tools and progress bar, read in the browser.
TOOLS = """() => {
    const box = (el) => { const r = el.getBoundingClientRect(); return {top: r.top, height: r.height, bottom: r.bottom}; };
    const bg = (el) => getComputedStyle(el).backgroundColor;
    const button = (name) => document.querySelector('button[name=' + name + ']');
    const history = document.querySelector('.object-tools a.historylink');
    return {
        start: box(button('start')), history: box(history), stop: box(button('stop')), run_now: box(button('run_now')),
        start_bg: bg(button('start')), stop_bg: bg(button('stop')), run_now_bg: bg(button('run_now')),
        history_bg: bg(history),
        track_bg: bg(document.querySelector('.tm-bar')), page_bg: bg(document.body),
    };
}"""


def rgb(css: str) -> tuple:
    """``rgb(1, 2, 3)`` → (1, 2, 3)."""
    return tuple(int(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3])


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two CSS ``rgb()`` colours."""

    def luminance(css):
        linear = [
            (c / 255 / 12.92) if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb(css)
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_task_buttons_line_up_with_history_and_the_track_shows(
    browser, static_server, superuser, commands, theme
):
    """Start / Stop / Run now sit exactly like HISTORY, Start stands out, the progress track is visible."""
    task = make_task(commands, "Buttons", command="tm_progress", status="STARTED")
    make_report(task, running=True, progress_done=3, progress_total=10, progress_at=timezone.now())
    page = browser.new_page()
    page.emulate_media(color_scheme=theme)
    login(page, static_server.url, "admin")
    page.goto(static_server.url + "/admin/taskmanager/task/%d/change/" % task.pk)
    page.locator("[role=progressbar]").wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / ("task_buttons_%s.png" % theme)))
    page.locator(".field-live_status").screenshot(path=str(ARTIFACTS / ("task_track_%s.png" % theme)))
    tools = page.evaluate(TOOLS)
    for name in ("start", "stop", "run_now"):
        assert abs(tools[name]["top"] - tools["history"]["top"]) <= 1, (name, tools)
        assert abs(tools[name]["height"] - tools["history"]["height"]) <= 1, (name, tools)
    # The main action stands out; Stop is not mistaken for it.
    assert len({tools["start_bg"], tools["stop_bg"], tools["history_bg"]}) == 3, tools
    assert tools["run_now_bg"] not in (tools["start_bg"], tools["stop_bg"]), tools
    # The progress bar's track shows on the page's background.
    assert contrast(tools["track_bg"], tools["page_bg"]) >= 1.5, tools

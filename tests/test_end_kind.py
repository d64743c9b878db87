"""How a run ended, as structured data (issue 16, items 6 and 7).

Every kind of end is recorded on the report (``end_kind``, ``exit_code``),
the task (``last_end_kind``) and the run history (the chart), by real runs
in the uWSGI spooler; a run a user stopped is shown apart from a crash in the
task list, the reports, the report page, the log page and the chart, with
words, not colour alone; the reports list filters on it; the kind is shown
translated (the stored end reason "completed" was English in Italian pages).
"""

import importlib
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from taskmanager.models import EndKind, LogLine, Report, RunHistory, Task

from .support.admin import TASK_URL, add_task, press, run_to_end, start_running, status_json
from .support.adminclient import client_for
from .support.objects import log_texts, make_report, make_task
from .support.waits import finished_report

pytestmark = pytest.mark.django_db(transaction=True)

REPORT_URL = "/admin/taskmanager/report/"


def assert_recorded(task, report, kind, exit_code=None):
    """The run's kind is on its report, its task and its history row."""
    assert (report.end_kind, report.exit_code) == (kind, exit_code), (report.end_reason, log_texts(report))
    task.refresh_from_db()
    assert task.last_end_kind == kind
    history = RunHistory.objects.get(task=task)
    assert (history.result, history.end_kind) == (report.result, kind)


@pytest.mark.parametrize(
    "command, arguments, result, kind, exit_code, reason",
    [
        ("tm_ok", "", "OK", EndKind.COMPLETED, None, "completed"),
        ("tm_error", "", "ERRORS", EndKind.COMPLETED, None, "completed"),
        ("tm_raise", "", "FAILED", EndKind.CRASHED, None, "exception: ValueError"),
        ("tm_segfault", "", "FAILED", EndKind.CRASHED, None, "signal SIGSEGV"),
        ("tm_exit", "--code 3", "FAILED", EndKind.EXIT_CODE, 3, "exit code 3"),
        ("tm_exit", "--code 0", "OK", EndKind.COMPLETED, None, "completed"),
    ],
)
def test_each_end_is_recorded_with_its_kind(
    server, admin_http, commands, command, arguments, result, kind, exit_code, reason
):
    task, report = run_to_end(admin_http, commands, "t-" + command + arguments, command, arguments)
    assert (report.result, report.end_reason) == (result, reason)
    assert_recorded(task, report, kind, exit_code)


def test_a_timed_out_run_is_recorded_as_timed_out(server, admin_http, commands):
    task = add_task(admin_http, commands, "slow", "tm_sleep", "--seconds 120, --tick 0.2", timeout="1")
    press(admin_http, task, "start")
    report = finished_report(task)
    assert (report.result, report.end_reason) == ("FAILED", "timed out after 1 seconds")
    assert_recorded(task, report, EndKind.TIMED_OUT)


def test_a_stopped_run_is_told_apart_from_a_crash_everywhere(server, admin_http, commands):
    stopped_task, running = start_running(admin_http, commands, "pressed stop")
    press(admin_http, stopped_task, "stop")
    stopped = finished_report(stopped_task)
    assert (stopped.result, stopped.end_reason) == ("FAILED", "stopped by user admin")
    assert_recorded(stopped_task, stopped, EndKind.STOPPED)
    crashed_task, crashed = run_to_end(admin_http, commands, "raised", "tm_raise")
    assert_recorded(crashed_task, crashed, EndKind.CRASHED)

    stopped_badge = (
        '<span class="tm-result tm-end-stopped"><span class="tm-badge tm-failed">Failed</span>'
        '<span class="tm-end" title="stopped by a user">stopped</span></span>'
    )
    crashed_badge = (
        '<span class="tm-result tm-end-crashed"><span class="tm-badge tm-failed">Failed</span>'
        '<span class="tm-end" title="crashed">crashed</span></span>'
    )
    # The task list, and its live refresh.
    listing = admin_http.get(TASK_URL).text
    assert stopped_badge in listing and crashed_badge in listing
    live = status_json(admin_http, stopped_task, crashed_task)
    assert live[str(stopped_task.pk)]["result_html"] == stopped_badge
    assert live[str(crashed_task.pk)]["result_html"] == crashed_badge
    # The reports list: badge and the end in words (the stored reason is the tooltip).
    reports = admin_http.get(REPORT_URL).text
    assert stopped_badge in reports and crashed_badge in reports
    assert '<span title="stopped by user admin">stopped by admin</span>' in reports
    assert '<span title="exception: ValueError">crashed (exception: ValueError)</span>' in reports
    # The report page and the log page.
    page = admin_http.get(REPORT_URL + "%d/change/" % stopped.pk).text
    assert stopped_badge in page and "stopped by admin" in page
    log_page = admin_http.get(REPORT_URL + "%d/log/" % stopped.pk).text
    assert "The run has finished (Failed, stopped by admin)" in log_page
    # The task page: its report inline and its chart (a grey bar, with words in its tooltip and the legend).
    task_page = admin_http.get(TASK_URL + "%d/change/" % stopped_task.pk).text
    assert stopped_badge in task_page
    bar = re.search(
        r'<rect class="tm-run tm-run-failed tm-end-stopped"[^>]*><title>([^<]*)</title>', task_page
    )
    assert bar and bar.group(1).endswith("Failed (stopped by a user)"), task_page
    assert "Stopped by a user" in task_page
    crash_page = admin_http.get(TASK_URL + "%d/change/" % crashed_task.pk).text
    assert re.search(r'<rect class="tm-run tm-run-failed tm-end-crashed"', crash_page)


def test_a_users_stop_is_a_note_not_a_warning_of_the_command(server, admin_http, commands):
    """The "Stop requested" line is the app's own INFO line: the WARNING filter agrees with the counts."""
    task, running = start_running(admin_http, commands, "stopped quietly")
    press(admin_http, task, "stop")
    report = finished_report(task)
    line = report.log_lines.get(text="Stop requested by admin.")
    assert (line.level, line.stream) == (LogLine.Level.INFO, LogLine.Stream.SYSTEM)
    assert (report.warnings, report.errors) == (0, 0)
    task.refresh_from_db()
    assert (task.warnings, task.errors) == (0, 0)
    warnings_page = admin_http.get(REPORT_URL + "%d/log/?level=WARNING" % report.pk).text
    assert "Stop requested" not in warnings_page and "No lines at this level." in warnings_page
    assert "Stop requested by admin." in admin_http.get(REPORT_URL + "%d/log/" % report.pk).text


def _legend_text(page: str) -> str:
    legend = re.search(r'<span class="tm-chart-legend">(.*?)</span>\s*</div>', page, re.S)
    assert legend, page
    return legend.group(1)


def test_the_chart_legend_says_stopped_by_a_user_once(server, admin_http, commands):
    """Issue 16 walk-through: the legend read "OK Warnings Errors Failed Failed ■ stopped"."""
    task = make_task(commands, "legend")
    RunHistory.objects.create(
        task=task,
        started=timezone.now(),
        duration=timedelta(seconds=2),
        result="FAILED",
        end_kind=EndKind.STOPPED,
    )
    legend = _legend_text(admin_http.get(TASK_URL + "%d/change/" % task.pk).text)
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", legend)).strip()
    assert words == "OK Warnings Errors Failed Stopped by a user", words
    # The grey swatch of a stopped run; its result (Failed) said in the tooltip.
    assert re.search(
        r'<span class="tm-end-stopped"><span class="tm-badge tm-failed" title="Failed: stopped by a user">',
        legend,
    )


def test_the_reports_list_filters_on_the_end(server, admin_http, commands):
    task = make_task(commands, "many ends")
    make_report(task, end_reason="completed", end_kind=EndKind.COMPLETED)
    stopped = make_report(task, result="FAILED", end_reason="stopped by user ann", end_kind=EndKind.STOPPED)
    exited = make_report(
        task, result="FAILED", end_reason="exit code 3", end_kind=EndKind.EXIT_CODE, exit_code=3
    )
    everything = admin_http.get(REPORT_URL).text
    assert "end_kind__exact=stopped" in everything  # the filter is offered
    for kind, shown in ((EndKind.STOPPED, stopped), (EndKind.EXIT_CODE, exited)):
        page = admin_http.get(REPORT_URL + "?end_kind__exact=" + kind.replace(" ", "+")).text
        listed = {int(pk) for pk in re.findall(r"/admin/taskmanager/report/(\d+)/change/", page)}
        assert listed == {shown.pk}, (kind, listed)
    assert "exit code 3" in admin_http.get(REPORT_URL + "?end_kind__exact=exit+code").text


def test_the_migration_gives_older_reports_their_kind(commands):
    """Migration 0018 maps the end reasons written before it; a reason it does not know stays kindless."""
    from django.apps import apps

    migration = importlib.import_module("taskmanager.migrations.0018_report_end_kind")
    reasons = {
        "completed": ("completed", None),
        "stopped by user ann": ("stopped", None),
        "timed out after 5 seconds": ("timed out", None),
        "interrupted": ("interrupted", None),
        "fenced: its heartbeat could not be written": ("fenced", None),
        "exception: ValueError": ("crashed", None),
        "signal SIGKILL": ("crashed", None),
        "supervisor error": ("crashed", None),
        "exit code 3": ("exit code", 3),
        "not allowed": ("not run", None),
        "something else": ("", None),
    }
    reports = {}
    for number, reason in enumerate(reasons):
        result = "OK" if reason == "completed" else "FAILED"
        task = make_task(commands, "old %d" % number, last_result=result)
        report = make_report(task, result=result, end_reason=reason)
        Task.objects.filter(pk=task.pk).update(last_datetime=report.invocation_datetime)
        RunHistory.objects.create(
            task=task, started=report.invocation_datetime, duration=timedelta(seconds=1), result=result
        )
        reports[reason] = report
    running = make_report(make_task(commands, "still running"), running=True)
    migration.set_end_kinds(apps, None)
    for reason, (kind, code) in reasons.items():
        report = Report.objects.get(pk=reports[reason].pk)
        assert (report.end_kind, report.exit_code) == (kind, code), reason
        assert Task.objects.get(pk=report.task_id).last_end_kind == kind, reason
        assert RunHistory.objects.get(task_id=report.task_id).end_kind == kind, reason
    assert Report.objects.get(pk=running.pk).end_kind == ""


def test_the_end_is_shown_in_italian(server, commands, superuser):
    client = client_for(server.url, "admin", language="it")
    task = make_task(commands, "in italiano", last_result="FAILED", last_end_kind=EndKind.STOPPED)
    done = make_report(task, end_reason="completed", end_kind=EndKind.COMPLETED)
    stopped = make_report(task, result="FAILED", end_reason="stopped by user ann", end_kind=EndKind.STOPPED)
    make_report(task, result="FAILED", end_reason="exit code 3", end_kind=EndKind.EXIT_CODE, exit_code=3)
    reports = client.get(REPORT_URL).text
    assert '<span title="completed">completata</span>' in reports
    assert '<span title="stopped by user ann">fermata da ann</span>' in reports
    assert '<span title="exit code 3">codice di uscita 3</span>' in reports
    assert '<span class="tm-end" title="fermata da un utente">fermata</span>' in reports
    assert ">completed<" not in reports
    # The filter's choices and the column are Italian too.
    assert "fermata da un utente</a>" in reports and "tempo scaduto</a>" in reports
    listing = client.get(TASK_URL).text
    assert '<span class="tm-end" title="fermata da un utente">fermata</span>' in listing
    log_page = client.get(REPORT_URL + "%d/log/" % done.pk).text
    status = re.search(r'<p id="tm-log-status"[^>]*>(.*?)</p>', log_page, re.S)
    assert status and "(OK, completata)" in status.group(1), log_page
    page = client.get(REPORT_URL + "%d/change/" % stopped.pk).text
    assert "fermata da ann" in page


@pytest.mark.browser
def test_browser_shows_a_stopped_run_unlike_a_crash(browser, static_server, superuser, commands):
    """The colours only a browser shows: a stopped run's badge and bar are grey, a crash's dark red."""
    from playwright.sync_api import expect

    from .support.browser import ARTIFACTS, login

    base = static_server.url
    shown = {}
    for kind, reason in ((EndKind.STOPPED, "stopped by user admin"), (EndKind.CRASHED, "signal SIGKILL")):
        task = make_task(commands, "run %s" % kind, last_result="FAILED", last_end_kind=kind)
        report = make_report(task, result="FAILED", end_reason=reason, end_kind=kind)
        RunHistory.objects.create(
            task=task,
            started=report.invocation_datetime,
            duration=timedelta(seconds=3),
            result="FAILED",
            end_kind=kind,
        )
        shown[kind] = task
    page = browser.new_page()
    login(page, base, "admin")
    page.goto(base + TASK_URL)

    def badge(kind):
        row = page.locator("#result_list tr", has_text="run %s" % kind)
        return row.locator(".tm-live-result .tm-badge")

    for kind, words in ((EndKind.STOPPED, "stopped"), (EndKind.CRASHED, "crashed")):
        expect(badge(kind)).to_have_text("Failed")
        end = page.locator("#result_list tr", has_text="run %s" % kind).locator(".tm-end")
        expect(end).to_be_visible()
        expect(end).to_contain_text(words)

    def background(locator):
        return locator.evaluate("el => getComputedStyle(el).backgroundColor")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#result_list").screenshot(path=str(ARTIFACTS / "end_kind_list.png"))
    assert background(badge(EndKind.STOPPED)) == "rgb(97, 97, 97)"
    assert background(badge(EndKind.CRASHED)) == "rgb(106, 27, 27)"

    def bar_fill(kind):
        page.goto(base + TASK_URL + "%d/change/" % shown[kind].pk)
        bar = page.locator("svg.tm-chart rect.tm-run")
        expect(bar).to_have_count(1)
        return bar.evaluate("el => getComputedStyle(el).fill")

    assert bar_fill(EndKind.STOPPED) == "rgb(117, 117, 117)"
    assert bar_fill(EndKind.CRASHED) == "rgb(106, 27, 27)"
    page.locator("svg.tm-chart").locator("..").screenshot(path=str(ARTIFACTS / "end_kind_chart.png"))
    legend = page.locator(".tm-chart-legend")
    expect(legend).to_contain_text("Stopped by a user")
    assert background(legend.locator(".tm-end-stopped .tm-badge")) == "rgb(97, 97, 97)"

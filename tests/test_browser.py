"""The admin in a real browser (Debian's chromium driven by Playwright) on the real uWSGI server.

Each step waits on the state of the page (Playwright's auto-waiting
``expect`` and ``wait_for_function``), never on a fixed sleep. A screenshot
of every step goes to ``tests/artifacts/``; with ``TM_UPDATE_DOC_IMAGES=1``
the ones the admin guide uses are also copied to ``docs/_static/images/``
(those copies are committed, so building the docs needs no browser).

When chromium or Playwright is missing these tests fail under CI (``CI=true``)
and are skipped with the reason otherwise.
"""

import os
import re
import shutil

import pytest

from taskmanager.models import Command, Report, Task

from .support.browser import ARTIFACTS, TIMEOUT_MS, login
from .support.objects import make_task
from .support.uwsgi_server import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOC_IMAGES = ROOT / "docs" / "_static" / "images"
#: Screenshots the admin guide (docs/admin.rst) shows.
DOC_SHOTS = {
    "index",
    "commands",
    "command_syntax",
    "task_form_error",
    "task_definition",
    "task_list_progress",
    "task_progress",
    "task_reports",
    "report_log_warning",
    "category",
    "viewer_task",
}


class Steps:
    """Screenshots of a browser session, one per step."""

    def __init__(self, page):
        self.page = page
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str, full_page: bool = False, locator=None) -> None:
        path = ARTIFACTS / ("%s.png" % name)
        if locator is not None:
            locator.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=full_page)
        if name in DOC_SHOTS and os.environ.get("TM_UPDATE_DOC_IMAGES") == "1":
            DOC_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_IMAGES / path.name)


def wait_progress_above(page, minimum: int) -> int:
    """Wait until the page's progress bar shows more than ``minimum`` percent (< 100); return it."""
    handle = page.wait_for_function(
        """(minimum) => {
            const bar = document.querySelector('[role=progressbar]');
            if (!bar) return false;
            const value = parseInt(bar.getAttribute('aria-valuenow'), 10);
            return value > minimum && value < 100 ? value : false;
        }""",
        arg=minimum,
        timeout=TIMEOUT_MS,
    )
    return handle.json_value()


def test_admin_journey(browser, static_server, superuser, staff):
    from playwright.sync_api import expect

    base = static_server.url
    # Only collect_commands is known at first: the browser collects the rest.
    Command.objects.create(app_name="taskmanager", name="collect_commands")
    page = browser.new_page()
    steps = Steps(page)

    login(page, base, "admin")
    expect(page.get_by_role("link", name="Task manager")).to_be_visible()
    steps.shot("index")

    # Collect the commands by running collect_commands as a task.
    page.goto(base + "/admin/taskmanager/task/add/")
    page.fill("#id_name", "Collect commands")
    page.select_option("#id_command", label="collect_commands (taskmanager)")
    page.fill("#id_arguments", "--excludecore, -v2")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    page.locator("#result_list").get_by_role("link", name="Collect commands").click()
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".messagelist")).to_contain_text("was started")
    expect(page.locator(".field-last_result_badge")).to_contain_text("OK")  # updated live
    page.reload()
    assert Command.objects.filter(name="tm_progress", active=True).exists()

    page.goto(base + "/admin/taskmanager/command/?q=tm_")
    expect(page.locator("#result_list")).to_contain_text("tm_progress")
    steps.shot("commands")
    page.locator("#result_list").get_by_role("link", name="tm_progress").first.click()
    expect(page.locator("pre.tm-syntax")).to_contain_text("--warn-at WARN_AT")
    steps.shot("command_syntax", full_page=True)

    # Create a task with arguments: a bad value first, then a good one.
    page.goto(base + "/admin/taskmanager/task/add/")
    page.fill("#id_name", "Import customers")
    page.select_option("#id_command", label="tm_progress (tests.testapp)")
    page.fill("#id_arguments", "--steps many")
    page.fill("#id_note", "Nightly import of the customer file; safe to run again.")
    page.click("input[name=_save]")
    error = page.locator(".field-arguments .errorlist")
    expect(error).to_contain_text("argument --steps: invalid int value: 'many'")
    steps.shot("task_form_error")
    page.fill("#id_arguments", "--steps 16, --tick 0.5, --warn-at 5, --message 'customer batch'")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator("code.tm-command-line")).to_have_text(
        "manage.py tm_progress --steps 16 --tick 0.5 --warn-at 5 --message 'customer batch'"
    )
    steps.shot("task_definition")
    task = Task.objects.get(name="Import customers")

    # Start it and watch the progress bar move, on the task page and in the list.
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".messagelist")).to_contain_text("was started")
    first = wait_progress_above(page, 0)
    second = wait_progress_above(page, first)
    assert 0 < first < second < 100
    expect(page.locator(".tm-progress-text")).to_contain_text("left")
    expect(page.locator(".tm-progress-message")).to_contain_text("customer batch")
    steps.shot("task_progress_page")
    steps.shot("task_progress", locator=page.locator("fieldset:has(.field-live_status)"))
    page.goto(base + "/admin/taskmanager/task/")
    seen = wait_progress_above(page, 0)
    wait_progress_above(page, seen)  # the list updates without a reload, too
    steps.shot("task_list_progress")

    # Open its report once the run ends, and filter the log.
    page.locator("#result_list").get_by_role("link", name="Import customers").click()
    expect(page.locator(".tm-live-notice")).to_be_visible()
    page.reload()
    expect(page.locator(".field-last_result_badge")).to_contain_text("Warnings")
    expect(page.locator("svg.tm-chart rect.tm-run-warnings")).to_have_count(1)
    page.locator("#reports-group").scroll_into_view_if_needed()
    steps.shot("task_reports", full_page=True)
    page.get_by_role("link", name="complete log with filters").first.click()
    expect(page.locator("body")).to_contain_text("customer batch 16 of 16")
    steps.shot("report_log")
    page.get_by_role("link", name="WARNING", exact=True).click()
    expect(page.locator("body")).to_contain_text("step 5 was slower than expected")
    expect(page.locator("body")).not_to_contain_text("customer batch 4 of 16")
    steps.shot("report_log_warning")
    report = Report.objects.get(task=task)
    assert (report.result, report.progress_done, report.warnings) == ("WARNINGS", 16, 1)

    # Stop a running task.
    page.goto(base + "/admin/taskmanager/task/add/")
    page.fill("#id_name", "Long sleeper")
    page.select_option("#id_command", label="tm_sleep (tests.testapp)")
    page.fill("#id_arguments", "--seconds 120, --tick 0.5")
    page.click("input[name=_continue]")
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".field-live_status .tm-badge")).to_have_text("Started")
    steps.shot("stop_before")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".messagelist")).to_contain_text("is being stopped")
    expect(page.locator(".tm-live-notice")).to_be_visible()
    page.reload()
    expect(page.locator(".field-last_result_badge")).to_contain_text("Failed")
    # A stop is told apart from a crash, in words (issue 16).
    expect(page.locator(".field-last_result_badge .tm-end")).to_have_text("stopped")
    expect(page.locator("#reports-group")).to_contain_text("stopped by admin")
    steps.shot("stop_after", full_page=True)

    # The category page lists its tasks with their status.
    page.goto(base + "/admin/taskmanager/taskcategory/add/")
    page.fill("#id_name", "Imports")
    page.click("input[name=_save]")
    page.goto(base + "/admin/taskmanager/task/%d/change/" % task.pk)
    page.select_option("#id_category", label="Imports")
    page.click("input[name=_save]")
    page.goto(base + "/admin/taskmanager/taskcategory/")
    page.locator("#result_list").get_by_role("link", name="Imports", exact=True).click()
    expect(page.locator(".inline-group")).to_contain_text("Import customers")
    expect(page.locator(".inline-group .tm-badge.tm-warnings")).to_be_visible()
    steps.shot("category")

    # A view-only user sees tasks and reports but no buttons and no actions.
    staff("view_task", "view_report", "view_command", "view_taskcategory", username="viewer")
    browser.clear_cookies()
    login(page, base, "viewer")
    page.goto(base + "/admin/taskmanager/task/")
    expect(page.locator("#result_list")).to_contain_text("Import customers")
    expect(page.locator("select[name=action]")).to_have_count(0)
    steps.shot("viewer_list")
    page.locator("#result_list").get_by_role("link", name="Import customers").click()
    expect(page.locator("code.tm-command-line")).to_be_visible()
    for name in ("Start", "Stop", "Run now"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_role("link", name="complete log with filters").first).to_be_visible()
    steps.shot("viewer_task")


def test_browser_shows_italian(browser, static_server, superuser, commands):
    from playwright.sync_api import expect

    base = static_server.url
    make_task(commands, "italiano")
    # The cookie Django's set_language view would set (LocaleMiddleware reads it).
    browser.add_cookies([{"name": "django_language", "value": "it", "url": base}])
    page = browser.new_page()
    login(page, base, "admin")
    page.goto(base + "/admin/taskmanager/task/")
    expect(page.locator("#changelist")).to_contain_text("Ultimo risultato")
    page.locator("#result_list").get_by_role("link", name="italiano").click()
    expect(page.get_by_role("button", name="Avvia")).to_be_visible()
    expect(page.locator("fieldset").first).to_contain_text("Definizione")
    Steps(page).shot("italian_task")
    assert re.search(r"Gestione attività", page.content())

"""Save as new and Run now with other arguments in a real browser (issue 16, items 13 and 14).

What a browser shows and submits: the control on the task's page, the form
page in the admin's look with the task's arguments filled in, its error, the
run's report; the "Save as new" button and the copy's page. Screenshots go
to ``tests/artifacts/``; with ``TM_UPDATE_DOC_IMAGES=1`` the form page also
to ``docs/_static/images/`` (docs/admin.rst shows it).
"""

import os
import shutil

import pytest

from taskmanager.models import Report, Task

from .support.browser import ARTIFACTS, login
from .support.objects import make_task
from .support.uwsgi_server import ROOT
from .support.waits import finished_report

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOC_IMAGES = ROOT / "docs" / "_static" / "images"


def shot(page, name: str, doc: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / ("%s.png" % name)
    page.screenshot(path=str(path), full_page=True)
    if doc and os.environ.get("TM_UPDATE_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / path.name)


def test_run_now_with_other_arguments_and_save_as_new(browser, static_server, superuser, commands):
    from playwright.sync_api import expect

    base = static_server.url
    task = make_task(commands, "Customer export", "tm_ok", arguments="--lines 1, --word nightly")
    page = browser.new_page()
    login(page, base, "admin")

    page.goto(base + "/admin/taskmanager/task/%d/change/" % task.pk)
    shot(page, "task_page_controls")
    page.get_by_role("link", name="Run now with other arguments…").click()
    field = page.locator("#id_arguments")
    expect(field).to_have_value("--lines 1, --word nightly")
    expect(page.locator(".breadcrumbs")).to_contain_text("Customer export")
    expect(page.locator("code.tm-command-line")).to_have_text("manage.py tm_ok --lines 1 --word nightly")
    # One line, wide enough for the arguments (not a 20-character box).
    assert field.evaluate("e => e.tagName") == "INPUT"
    assert field.bounding_box()["width"] > 400

    field.fill("--lines many")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator(".field-arguments .errorlist")).to_contain_text("invalid int value: 'many'")
    expect(field).to_have_value("--lines many")
    shot(page, "task_run_with_arguments", doc=True)
    assert not Report.objects.filter(task=task).exists()
    field.fill("--lines 2, --word again")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator(".messagelist")).to_contain_text("will run now with other arguments")
    report = finished_report(task)
    page.goto(base + "/admin/taskmanager/report/%d/change/" % report.pk)
    expect(page.locator(".field-command_line")).to_contain_text("manage.py tm_ok --lines 2 --word again")
    expect(page.locator(".field-arguments_display")).to_contain_text("--lines 2, --word again")
    shot(page, "report_other_arguments")
    task.refresh_from_db()
    assert task.arguments == "--lines 1, --word nightly"

    # Save as new: the copy under its own name, idle, without the original's runs.
    page.goto(base + "/admin/taskmanager/task/%d/change/" % task.pk)
    page.fill("#id_name", "Customer export (weekly)")
    page.locator("input[name=_saveasnew]").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    copy = Task.objects.get(name="Customer export (weekly)")
    assert page.url.endswith("/admin/taskmanager/task/%d/change/" % copy.pk)
    expect(page.locator(".field-live_status .tm-badge")).to_have_text("Idle")
    expect(page.locator("code.tm-command-line")).to_have_text("manage.py tm_ok --lines 1 --word nightly")
    assert not copy.reports.exists() and Task.objects.count() == 2
    shot(page, "task_saved_as_new")

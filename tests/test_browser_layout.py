"""The task list fits a 1280-1400 px window with the admin's navigation sidebar open (real browser)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from taskmanager.models import Task, TaskCategory

from .support.browser import ARTIFACTS, changelist_overflow, chromium, login
from .support.objects import make_report

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Realistic rows: long names, every status and result, counts, a running task with progress.
ROWS = [
    ("Check mailboxes", "IDLE", "OK", 0, 0, 0.4),
    ("Collect commands", "IDLE", "OK", 0, 123, 12),
    ("Import records", "IDLE", "FAILED", 1, 0, 7),
    ("Rebuild the search index", "STARTED", "OK", 0, 0, 1),
    ("Refresh the cache every 2 minutes", "SPOOLED", "WARNINGS", 0, 3, 42),
    ("Send the newsletter", "SCHEDULED", "ERRORS", 12, 1, 3600),
]


@pytest.mark.parametrize("width", [1280, 1400])
def test_task_list_fits_with_the_sidebar_open(playwright_api, static_server, superuser, commands, width):
    command = commands["tm_progress"]
    category = TaskCategory.objects.create(name="Maintenance")
    now = timezone.now()
    for hours, (name, status, result, errors, warnings, seconds) in enumerate(ROWS):
        Task.objects.create(
            name=name,
            command=command,
            category=category,
            status=status,
            last_result=result,
            errors=errors,
            warnings=warnings,
            last_datetime=now - timedelta(hours=hours),
            last_duration=timedelta(seconds=seconds),
            next_datetime=now + timedelta(days=1) if status in ("SPOOLED", "SCHEDULED") else None,
            # A periodic task shows its repetition under its next run.
            repetition_period="minute" if "every 2 minutes" in name else "",
            repetition_rate=2 if "every 2 minutes" in name else None,
        )
    # A live run (make_report's alive: this process supervises it), or any
    # node's recovery pass would close it before the page shows its bar.
    make_report(
        Task.objects.get(name="Rebuild the search index"),
        running=True,
        progress_done=12,
        progress_total=40,
        progress_message="12000 documents indexed",
        progress_at=now,
    )
    with chromium(playwright_api, width=width) as context:
        page = context.new_page()
        login(page, static_server.url, "admin")
        page.goto(static_server.url + "/admin/taskmanager/task/")
        assert page.locator("#nav-sidebar").is_visible()  # the admin's default
        page.locator("[role=progressbar]").wait_for()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / ("task_list_%d.png" % width)))
        sizes = changelist_overflow(page)
    # No column hidden behind the horizontal scroll of the results.
    assert sizes["scroll"] <= sizes["client"] and not sizes["outside"], sizes

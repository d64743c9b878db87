"""The schedule preview in a real browser: it follows the scheduling fields before the task is saved."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from .support.browser import ARTIFACTS, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_preview_follows_the_form_before_saving(browser, static_server, superuser, commands):
    from playwright.sync_api import expect

    base = static_server.url
    page = browser.new_page()
    login(page, base, "admin")
    page.goto(base + "/admin/taskmanager/task/add/")
    preview = page.locator(".tm-schedule-preview")
    expect(preview).to_contain_text("Once, as soon as started")

    # The eve of the spring change two years from now: the second run is marked.
    march_31 = datetime(timezone.now().year + 2, 3, 31)
    change_day = march_31 - timedelta(days=(march_31.weekday() + 1) % 7)
    eve = (change_day - timedelta(days=1)).strftime("%Y-%m-%d")
    page.fill("#id_scheduling_0", eve)
    page.fill("#id_scheduling_1", "09:00:00")
    page.select_option("#id_repetition_period", "day")
    page.fill("#id_repetition_rate", "1")
    expect(preview).to_contain_text("Every day from Sat %s 09:00:00 CET" % eve)
    expect(preview.locator("li")).to_have_count(5)
    expect(preview.locator("li.tm-dst-change")).to_have_count(1)
    expect(preview.locator("li").nth(1)).to_contain_text("%s 09:00:00 CEST" % change_day.strftime("%Y-%m-%d"))
    expect(preview.locator("li").nth(1)).to_contain_text("clocks change before this run")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    preview.screenshot(path=str(ARTIFACTS / "task_schedule_preview.png"))

    # A value the form would refuse shows the form's message; nothing was saved.
    page.fill("#id_repetition_rate", "0")
    expect(preview).to_contain_text("at least 1")
    page.fill("#id_repetition_rate", "3")
    expect(preview).to_contain_text("Every 3 days from Sat %s 09:00:00 CET" % eve)
    from taskmanager.models import Task

    assert not Task.objects.exists()

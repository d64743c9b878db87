"""What a new user stumbled on in the admin (issue 16, items 8 and 11), through the real server.

One date-time format with seconds everywhere (two runs of one minute told
apart), a task that cannot run marked before Start, periodic tasks visible
in the list, messages showing the task's name as typed, "PID", and a
two-row box for one line of arguments.
"""

import html
import json
import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone, translation

from taskmanager import datetimes

from .support.admin import TASK_URL, press
from .support.objects import make_report, make_task

pytestmark = pytest.mark.django_db(transaction=True)
REPORT_URL = "/admin/taskmanager/report/"


def _row(listing: str, name: str) -> str:
    """The task list's row of the task ``name``."""
    (row,) = [row for row in re.findall(r"<tr[^>]*>.*?</tr>", listing, re.S) if ">%s<" % name in row]
    return row


def test_the_one_format_follows_the_language_and_keeps_the_seconds():
    moment = timezone.make_aware(datetime(2026, 12, 6, 7, 15, 9))
    with translation.override("en"):
        assert datetimes.format_datetime(moment) == "2026-12-06 07:15:09"
    with translation.override("it"):
        assert datetimes.format_datetime(moment) == "06/12/2026 07:15:09"
    with translation.override("zh-hans"):  # its time input format has no seconds: they are added
        assert datetimes.time_part(moment) == "07:15:09"
    assert datetimes.format_datetime(None) == "-"


def test_two_runs_of_one_minute_are_told_apart(server, admin_http, commands):
    task = make_task(commands, "twice a minute")
    first = timezone.localtime().replace(second=5, microsecond=0)
    second = first.replace(second=41)
    for started in (first, second):
        make_report(task, invocation_datetime=started, finished_datetime=started + timedelta(seconds=2))
    shown = [datetimes.format_datetime(first), datetimes.format_datetime(second)]
    assert shown[0] != shown[1] and shown[0].endswith(":05")
    reports = html.unescape(admin_http.get(REPORT_URL).text)
    page = html.unescape(admin_http.get(TASK_URL + "%d/change/" % task.pk).text)
    for started, when in zip((first, second), shown, strict=True):
        # The reports list's "started" column (date, then time), the task page's report titles and times.
        assert re.search(
            r'<td class="field-started_run"><time [^>]*><span>%s</span> <span>%s</span></time>'
            % (datetimes.date_part(started), datetimes.time_part(started)),
            reports,
        ), when
        assert re.search(r"<p>\s*twice a minute @ %s\s" % when, page), when
        assert re.search(r'class="field-invocation_datetime_display">\s*<p>%s</p>' % when, page), when
    assert "a.m." not in reports and "p.m." not in reports
    # The finished time, on the report's page in the same format (Django's own would be "Dec. 6, 2026, 7:15 a.m.").
    report = task.reports.get(invocation_datetime=second)
    report_page = html.unescape(admin_http.get(REPORT_URL + "%d/change/" % report.pk).text)
    assert datetimes.format_datetime(second + timedelta(seconds=2)) in report_page


def test_list_preview_and_messages_share_the_format(server, admin_http, commands):
    at = (timezone.localtime() + timedelta(days=3)).replace(hour=9, minute=30, second=0, microsecond=0)
    task = make_task(commands, "later", scheduling=at)
    resp = press(admin_http, task, "start")
    when = datetimes.format_datetime(at)
    assert "“later” is scheduled: next run %s." % when in html.unescape(resp.text)
    listing = html.unescape(admin_http.get(TASK_URL).text)
    assert "<span>%s</span> <span>%s</span>" % (datetimes.date_part(at), datetimes.time_part(at)) in listing
    query = "scheduling_0=%s&scheduling_1=09:30:00&repetition_period=day&repetition_rate=1" % at.strftime(
        "%Y-%m-%d"
    )
    data = json.loads(admin_http.get(TASK_URL + "schedule-preview/?" + query).text)
    assert data["runs"][0]["local"].endswith(when)
    assert data["summary"] == "every day from %s %s" % (data["runs"][0]["local"], data["runs"][0]["zone"])
    press(admin_http, task, "stop")


def test_a_task_that_cannot_run_says_so_before_start(server, admin_http, commands):
    command = commands["tm_ok"]
    task = make_task(commands, "dormant")
    command.active = False
    command.save()
    page = html.unescape(admin_http.get(TASK_URL + "%d/change/" % task.pk).text)
    assert "This task cannot run. The command tm_ok is not active" in page
    # The reason is a sentence of its own, not a capital after a colon.
    start = html.unescape(press(admin_http, task, "start").text)
    assert "“dormant” cannot start. The command tm_ok is not active: a superuser can activate it" in start
    run_now = html.unescape(press(admin_http, task, "run-now").text)
    assert "“dormant” cannot run now. The command tm_ok is not active" in run_now
    listing = admin_http.get(TASK_URL).text
    row = _row(listing, "dormant")
    assert 'class="tm-cannot-run"' in row and "cannot run" in row
    command.active = True
    command.save()
    listing = admin_http.get(TASK_URL).text
    assert "tm-cannot-run" not in _row(listing, "dormant")


def test_periodic_tasks_stand_out_in_the_list(server, admin_http, commands):
    make_task(commands, "every-two-hours", repetition_period="hour", repetition_rate=2)
    make_task(commands, "just-once")
    listing = admin_http.get(TASK_URL).text
    assert 'tm-repeats">every 2 hours<' in _row(listing, "every-two-hours")
    assert "tm-repeats" not in _row(listing, "just-once")
    # The filter's values are capitalised like every other filter's ("All", "Idle").
    assert re.search(r'href="\?repeats=periodic"[^>]*>Periodic</a>', listing), listing
    assert re.search(r'href="\?repeats=once"[^>]*>Once</a>', listing)
    periodic = admin_http.get(TASK_URL + "?repeats=periodic").text
    assert "every-two-hours" in periodic and "just-once" not in periodic
    once = admin_http.get(TASK_URL + "?repeats=once").text
    assert "just-once" in once and "every-two-hours" not in once


def test_messages_show_the_name_as_typed(server, admin_http, commands):
    task = make_task(commands, "shop: nightly sync")
    text = html.unescape(press(admin_http, task, "stop").text)
    assert "“shop: nightly sync” is neither running nor scheduled." in text
    assert "Shop: nightly sync" not in text


def test_pid_label_and_one_line_arguments_box(server, admin_http, commands):
    task = make_task(commands, "labels")
    report = make_report(task, pid=4242)
    page = admin_http.get(REPORT_URL + "%d/change/" % report.pk).text
    assert re.search(r"<label>PID:</label>", page)
    form = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    box = re.search(r'<textarea[^>]*name="arguments"[^>]*>', form).group(0)
    assert 'rows="2"' in box and "vLargeTextField" in box

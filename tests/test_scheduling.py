"""Scheduling through the real uWSGI server: first runs, spool files, Stop, edits, recovery.

The spool files are read straight from the server's spool directory
(tests/support/spool.py): what uWSGI really holds and runs. The file's
``at`` is its mtime too.
"""

import html
import json
import math
import os
import signal
from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from taskmanager import datetimes, schedule, spoolfiles
from taskmanager.models import Report, SpoolerHeartbeat, Task

from .support.admin import TASK_URL, add_task, bulk_action, edit_task, press, task_form
from .support.adminclient import AdminClient, client_for, form_errors
from .support.objects import make_task
from .support.scheduling import project_tz, schedule_fields, whole_seconds_ahead
from .support.spool import entries_of, node_name, spool_entries, spool_paths, tokens_by_task
from .support.waits import finished_reports, wait_for, wait_gone

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_sensitive]


# -- helpers ------------------------------------------------------------------------


def at_of(dt) -> str:
    """The ``at`` the spool file must carry for a run at ``dt``: whole seconds, rounded up."""
    return str(math.ceil(dt.timestamp()))


# -- first run and spool files -------------------------------------------------------


def test_one_shot_starts_at_its_time_not_before(server, admin_http, commands):
    when = whole_seconds_ahead(3)
    task = add_task(admin_http, commands, "one shot", **schedule_fields(when))
    assert task.scheduling == when
    press(admin_http, task, "start")
    task.refresh_from_db()
    assert task.status == Task.Status.SCHEDULED
    assert task.next_datetime == when
    entry = spoolfiles.read(task.spooler_id)
    assert entry["token"] == task.run_token
    assert entry["at"] == at_of(when)
    assert int(os.stat(task.spooler_id).st_mtime) == int(at_of(when))

    path = task.spooler_id
    (report,) = finished_reports(task)
    assert report.invocation_datetime >= when
    assert report.trigger == Report.Trigger.START
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert task.next_datetime is None
    wait_gone(path)


def test_periodic_spool_file_carries_the_next_slot(server, admin_http, commands):
    tz = project_tz()
    # An hourly grid whose slots fall half an hour from now: the next slot
    # cannot change while the test runs.
    anchor = (timezone.now() - timedelta(hours=5, minutes=30)).replace(microsecond=0)
    hourly = add_task(admin_http, commands, "hourly", **schedule_fields(anchor, "hour", 1))
    press(admin_http, hourly, "start")
    hourly.refresh_from_db()
    expected, kept_anchor = schedule.first_run(anchor, "hour", 1, timezone.now(), tz)
    assert kept_anchor == anchor == hourly.scheduling
    assert hourly.status == Task.Status.SCHEDULED
    assert hourly.next_datetime == expected == anchor + timedelta(hours=6)
    assert spoolfiles.read(hourly.spooler_id)["at"] == at_of(expected)

    # Every minute from 2 s ahead: once the first run is claimed, the next
    # entry is already spooled for the next slot of the anchor's grid.
    start = whole_seconds_ahead(2)
    minutely = add_task(admin_http, commands, "minutely", **schedule_fields(start, "minute", 1))
    press(admin_http, minutely, "start")
    (report,) = finished_reports(minutely)
    assert report.invocation_datetime >= start
    minutely.refresh_from_db()
    assert minutely.status == Task.Status.SPOOLED
    next_run = schedule.next_slot(start, "minute", 1, report.invocation_datetime, tz)
    assert minutely.next_datetime == next_run == start + timedelta(minutes=1)
    (entry,) = entries_of(server.spool_dir, minutely)
    assert entry["at"] == at_of(next_run)
    assert entry["token"] == minutely.run_token
    assert spoolfiles.read(minutely.spooler_id) == entry
    press(admin_http, minutely, "stop")


def test_a_failed_run_still_advances_to_the_next_slot(server, admin_http, commands):
    start = whole_seconds_ahead(1)
    task = add_task(admin_http, commands, "failing", "tm_raise", **schedule_fields(start, "minute", 5))
    press(admin_http, task, "start")
    (report,) = finished_reports(task)
    assert report.result == Task.Result.FAILED
    task.refresh_from_db()
    assert task.status == Task.Status.SPOOLED
    assert task.next_datetime == start + timedelta(minutes=5)
    (entry,) = entries_of(server.spool_dir, task)
    assert entry["at"] == at_of(task.next_datetime)
    press(admin_http, task, "stop")


def test_an_hour_of_missed_slots_runs_once_then_follows_the_grid(server, admin_http, commands):
    """Downtime is simulated by the task's state: its next run was due 55 minutes ago.

    The lost entry is queued again by ``respool_tasks`` (as a spooler start
    would); the task runs once, not 12 times, and its next run is on the grid.
    """
    now = timezone.now()
    anchor = (now - timedelta(hours=1)).replace(microsecond=0)
    task = make_task(
        commands,
        "every 5 minutes",
        scheduling=anchor,
        repetition_period="minute",
        repetition_rate=5,
        status=Task.Status.SPOOLED,
        run_token="lost-with-the-old-server",
        next_datetime=anchor + timedelta(minutes=5),
        spooler_node=node_name(server.spool_dir),
    )
    call_command("respool_tasks", spool_dir=str(server.spool_dir), stdout=StringIO())
    (report,) = finished_reports(task)
    assert report.trigger == Report.Trigger.RECOVERY
    task.refresh_from_db()
    expected = schedule.next_slot(anchor, "minute", 5, report.invocation_datetime, project_tz())
    assert task.status == Task.Status.SPOOLED
    assert task.next_datetime == expected
    assert report.invocation_datetime < expected <= report.invocation_datetime + timedelta(minutes=5)
    (entry,) = entries_of(server.spool_dir, task)
    assert entry["at"] == at_of(expected)
    assert Report.objects.filter(task=task).count() == 1
    press(admin_http, task, "stop")


def test_stop_makes_the_old_spool_file_run_nothing(server, admin_http, commands):
    task = add_task(admin_http, commands, "stopped", **schedule_fields(whole_seconds_ahead(2)))
    press(admin_http, task, "start")
    task.refresh_from_db()
    old = task.spooler_id
    assert os.path.exists(old)
    press(admin_http, task, "stop")
    task.refresh_from_db()
    assert (task.status, task.run_token, task.next_datetime) == (Task.Status.IDLE, "", None)
    wait_gone(old)  # consumed at its time...
    assert not Report.objects.filter(task=task).exists()  # ...without running


def test_edit_replaces_the_spool_entry(server, admin_http, commands):
    first = whole_seconds_ahead(2)
    task = add_task(admin_http, commands, "edited", **schedule_fields(first))
    press(admin_http, task, "start")
    task.refresh_from_db()
    old_path, old_token = task.spooler_id, task.run_token

    later = whole_seconds_ahead(3)  # a second or more after ``first``: computed later, one second further
    edit_task(admin_http, task, arguments="--lines 1", **schedule_fields(later))
    task.refresh_from_db()
    assert task.status == Task.Status.SCHEDULED
    assert task.run_token != old_token
    assert task.next_datetime == later
    entry = spoolfiles.read(task.spooler_id)
    assert (entry["token"], entry["at"]) == (task.run_token, at_of(later))
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk)
    shown = datetimes.format_datetime(later)
    assert html.escape(shown) in page.text or shown in page.text
    assert 'datetime="%s"' % later.isoformat() in page.text  # first run of the preview

    wait_gone(old_path)
    (report,) = finished_reports(task)
    assert report.invocation_datetime >= later
    assert "--lines 1" in report.command_line
    assert Report.objects.filter(task=task).count() == 1


def test_editing_a_spooled_periodic_task_moves_its_next_run(server, admin_http, commands):
    tz = project_tz()
    anchor = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    task = add_task(admin_http, commands, "daily", **schedule_fields(anchor, "day", 1))
    press(admin_http, task, "start")
    task.refresh_from_db()
    old_token = task.run_token
    new_anchor = anchor - timedelta(days=3)  # same time of day, grid from 3 days ago
    edit_task(admin_http, task, **schedule_fields(new_anchor, "day", 2))
    task.refresh_from_db()
    expected, _ = schedule.first_run(new_anchor, "day", 2, timezone.now(), tz)
    assert task.run_token != old_token
    assert task.next_datetime == expected
    assert spoolfiles.read(task.spooler_id)["at"] == at_of(expected)
    assert len(entries_of(server.spool_dir, task)) == 1
    press(admin_http, task, "stop")


def test_editing_a_running_periodic_task_replaces_its_next_run(server, admin_http, commands):
    tz = project_tz()
    start = whole_seconds_ahead(1)
    task = add_task(
        admin_http, commands, "long hourly", "tm_sleep", "--seconds 30", **schedule_fields(start, "hour", 1)
    )
    press(admin_http, task, "start")
    wait_for(lambda: Task.objects.get(pk=task.pk).status == Task.Status.STARTED, message="the run")
    task.refresh_from_db()
    chained = task.run_token
    assert task.next_datetime == start + timedelta(hours=1)

    edit_task(admin_http, task, **schedule_fields(start, "minute", 20))
    task.refresh_from_db()
    assert task.status == Task.Status.STARTED
    assert task.run_token not in ("", chained)
    expected = schedule.next_slot(start, "minute", 20, timezone.now(), tz)
    assert task.next_datetime == expected == start + timedelta(minutes=20)
    assert spoolfiles.read(task.spooler_id)["at"] == at_of(expected)
    press(admin_http, task, "stop")
    finished_reports(task)
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE


# -- run now, stop and start again -------------------------------------------------------


def test_run_now_leaves_anchor_next_run_and_status_unchanged(server, admin_http, commands):
    anchor = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    task = add_task(admin_http, commands, "run now", **schedule_fields(anchor, "hour", 3))
    press(admin_http, task, "start")
    task.refresh_from_db()
    before = (task.status, task.scheduling, task.next_datetime, task.run_token, task.spooler_id)
    assert before[0] == Task.Status.SCHEDULED

    press(admin_http, task, "run-now")
    (report,) = finished_reports(task)
    assert report.trigger == Report.Trigger.RUN_NOW
    wait_for(lambda: Task.objects.get(pk=task.pk).status != Task.Status.STARTED, message="the run's end")
    task.refresh_from_db()
    assert (task.status, task.scheduling, task.next_datetime, task.run_token, task.spooler_id) == before
    assert spoolfiles.read(task.spooler_id)["at"] == at_of(anchor)


@pytest.mark.parametrize("restart", ["button", "bulk action"])
def test_start_after_stop_resumes_on_the_grid_without_catch_up(server, admin_http, commands, restart):
    tz = project_tz()
    anchor = (timezone.now() - timedelta(hours=3, minutes=30)).replace(microsecond=0)
    task = add_task(admin_http, commands, "resumed", **schedule_fields(anchor, "hour", 2))
    press(admin_http, task, "start")
    task.refresh_from_db()
    first = task.next_datetime
    assert first == anchor + timedelta(hours=4)

    press(admin_http, task, "stop")
    if restart == "button":
        press(admin_http, task, "start")
    else:
        bulk_action(admin_http, "start_tasks", task)
    task.refresh_from_db()
    expected, _ = schedule.first_run(anchor, "hour", 2, timezone.now(), tz)
    assert task.status == Task.Status.SCHEDULED  # not SPOOLED to run at once
    assert task.scheduling == anchor
    assert task.next_datetime == expected == first
    (entry,) = entries_of(server.spool_dir, task)
    assert entry["at"] == at_of(first)
    assert not Report.objects.filter(task=task).exists()
    bulk_action(admin_http, "stop_tasks", task)


def test_start_uses_the_project_time_zone_not_the_request_zone(uwsgi_node, commands):
    """A web request that activated another zone computes the same runs as the spooler."""
    rome, new_york = project_tz(), ZoneInfo("America/New_York")
    now = timezone.now()
    # A daily grid anchored where New York and Rome are 5 hours apart (US
    # summer time starts weeks earlier): its next slot differs in the two
    # zones whenever they are 6 hours apart today, and vice versa.
    candidates = [
        now.replace(month=3, day=20, hour=8, minute=0, second=0, microsecond=0) - timedelta(days=365)
    ]
    candidates.append(candidates[0].replace(month=7, day=1))
    for anchor in candidates:
        in_rome = schedule.first_run(anchor, "day", 1, now, rome)[0]
        if in_rome != schedule.first_run(anchor, "day", 1, now, new_york)[0]:
            break
    else:
        pytest.fail("no anchor separates the two zones")
    task = make_task(commands, "zoned", scheduling=anchor, repetition_period="day", repetition_rate=1)
    node = uwsgi_node(
        {
            "MIDDLEWARE": settings.MIDDLEWARE + ["tests.testapp.middleware.ActivateZoneMiddleware"],
            "TM_TEST_REQUEST_ZONE": "America/New_York",
        }
    )
    client = node.admin
    # The request's zone is active: the form shows the anchor in New York time.
    page = client.get(TASK_URL + "%d/change/" % task.pk).text
    assert 'value="%s"' % anchor.astimezone(new_york).strftime("%H:%M:%S") in page
    press(client, task, "start")
    task.refresh_from_db()
    assert task.status == Task.Status.SCHEDULED
    assert task.next_datetime == schedule.first_run(anchor, "day", 1, timezone.now(), rome)[0]
    assert spoolfiles.read(task.spooler_id)["at"] == at_of(task.next_datetime)


# -- form errors and the preview ------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"repetition_period": "day", "repetition_rate": ""}, "needs a repetition rate of at least 1"),
        ({"repetition_period": "hour", "repetition_rate": "0"}, "needs a repetition rate of at least 1"),
        ({"repetition_period": "", "repetition_rate": "2"}, "without a repetition period"),
        ({"repetition_period": "minute", "repetition_rate": "99999999"}, "too large"),
        (
            {
                "scheduling_0": "9999-12-31",
                "scheduling_1": "10:00:00",
                "repetition_period": "month",
                "repetition_rate": "1",
            },
            "no run after the first one before the year 9999",
        ),
    ],
)
def test_impossible_schedules_are_form_errors(server, admin_http, commands, fields, expected):
    data = task_form(commands, "impossible", **{"scheduling_0": "", "scheduling_1": "", **fields})
    resp = admin_http.post(TASK_URL + "add/", data)
    assert resp.status == 200
    assert expected in form_errors(resp)
    assert not Task.objects.filter(name="impossible").exists()


def _last_sunday_of_march(year):
    day = datetime(year, 3, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def test_preview_endpoint_lists_next_runs_with_dst_marked(server, admin_http, commands):
    year = timezone.now().year + 2
    change_day = _last_sunday_of_march(year)
    eve = change_day - timedelta(days=1)
    query = "scheduling_0=%s&scheduling_1=09:00:00&repetition_period=day&repetition_rate=1" % eve.strftime(
        "%Y-%m-%d"
    )
    resp = admin_http.get(TASK_URL + "schedule-preview/?" + query)
    assert resp.status == 200, resp.text[:500]
    data = json.loads(resp.text)
    assert data["ok"] and data["timezone"] == settings.TIME_ZONE
    # The headline shows its time as the list does: day of the week, date, time, zone.
    assert data["summary"] == "every day from %s CET" % data["runs"][0]["local"]
    runs = data["runs"]
    assert len(runs) == 5
    assert all(r["local"].endswith("09:00:00") for r in runs)
    assert [r["zone"] for r in runs[:2]] == ["CET", "CEST"]
    assert [r["dst_change"] for r in runs] == [False, True, False, False, False]
    assert runs[0]["at"] == "%sT08:00:00+00:00" % eve.strftime("%Y-%m-%d")
    assert runs[1]["at"] == "%sT07:00:00+00:00" % change_day.strftime("%Y-%m-%d")
    assert "clocks change before this run" in data["html"]

    gap = admin_http.get(
        TASK_URL
        + "schedule-preview/?scheduling_0=%s&scheduling_1=02:30:00&repetition_period=day&repetition_rate=1"
        % eve.strftime("%Y-%m-%d")
    )
    gap_runs = json.loads(gap.text)["runs"]
    assert gap_runs[1]["local"].endswith("03:30:00")
    assert any("does not exist" in n for n in gap_runs[1]["notes"])

    bad = json.loads(
        admin_http.get(TASK_URL + "schedule-preview/?repetition_period=day&repetition_rate=0").text
    )
    assert not bad["ok"] and "at least 1" in bad["errors"][0]
    assert "at least 1" in bad["html"]

    # The same preview is rendered on the page for the saved values, and
    # the page loads the script that refreshes it while editing.
    task = add_task(
        admin_http,
        commands,
        "previewed",
        **schedule_fields(timezone.make_aware(eve.replace(hour=9), project_tz()), "day", 1),
    )
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk)
    assert "Every day from %s 09:00:00 CET" % eve.strftime("%a %Y-%m-%d") in page.text
    assert 'datetime="%sT07:00:00+00:00"' % change_day.strftime("%Y-%m-%d") in page.text
    assert "taskmanager/schedule_preview.js" in page.text


def test_preview_headline_and_runs_agree_on_the_time_and_on_a_past_one(server, admin_http, commands):
    """Issue 16 walk-through: "Once at 2026-12-06 08:05:46" above "Sun 2026-12-06 08:07:02 UTC", and
    still "Once at" a time that had passed while the list showed now (Start runs it at once)."""
    tz = project_tz()
    later = (timezone.now() + timedelta(days=2)).astimezone(tz).replace(microsecond=0)

    def preview(at):
        query = "scheduling_0=%s&scheduling_1=%s" % (at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S"))
        return json.loads(admin_http.get(TASK_URL + "schedule-preview/?" + query).text)

    data = preview(later)
    (run,) = data["runs"]
    assert data["summary"] == "once at %s %s" % (run["local"], run["zone"])
    assert run["local"].startswith(later.strftime("%a ")) and run["local"].endswith(
        datetimes.format_datetime(later)
    )

    past = (timezone.now() - timedelta(minutes=5)).astimezone(tz)
    data = preview(past)
    assert data["summary"] == "once, as soon as started (the time given has passed)"
    (run,) = data["runs"]
    assert abs(datetime.fromisoformat(run["at"]) - timezone.now()) < timedelta(minutes=1)

    # A queued task's edit with a past time: saving reschedules it, so it runs at once.
    task = make_task(commands, "queued", scheduling=later)
    press(admin_http, task, "start")
    query = "scheduling_0=%s&scheduling_1=%s&task=%d" % (
        past.strftime("%Y-%m-%d"),
        past.strftime("%H:%M:%S"),
        task.pk,
    )
    data = json.loads(admin_http.get(TASK_URL + "schedule-preview/?" + query).text)
    assert data["basis"] == "save"
    assert data["summary"] == "once, as soon as saved (the time given has passed)"
    press(admin_http, task, "stop")


def test_preview_needs_login_and_view_permission(server, admin_http, staff, commands):
    from django.contrib.auth.models import Permission

    anonymous = AdminClient(server.url)
    resp = anonymous.get(TASK_URL + "schedule-preview/?repetition_period=day&repetition_rate=1", follow=False)
    assert resp.status == 302 and "/admin/login/" in resp.url

    user = staff()
    client = client_for(server.url, "staff")
    assert client.get(TASK_URL + "schedule-preview/").status == 403
    user.user_permissions.add(Permission.objects.get(codename="view_task"))
    resp = client.get(TASK_URL + "schedule-preview/?repetition_period=hour&repetition_rate=2")
    assert resp.status == 200
    assert json.loads(resp.text)["summary"] == "every 2 hours, starting when started"


def test_task_page_fits_the_status(server, admin_http, commands):
    """Preview wording and spool file follow the status; the add form has no Reports section."""
    from urllib.parse import urlencode

    add_page = html.unescape(admin_http.get(TASK_URL + "add/").text)
    assert 'id="reports-group"' not in add_page
    assert "Runs if the task is started now, in the project's time zone" in add_page

    def page(task):
        return html.unescape(admin_http.get(TASK_URL + "%d/change/" % task.pk).text)

    def edit_preview(task, **fields):
        """The preview the page asks for while the scheduling fields of ``task`` are edited."""
        resp = admin_http.get(TASK_URL + "schedule-preview/?" + urlencode({**fields, "task": task.pk}))
        data = json.loads(resp.text)
        data["html"] = html.unescape(data["html"])
        return data

    idle = add_task(admin_http, commands, "fit idle")
    text = page(idle)
    assert 'id="reports-group"' in text
    assert "Runs if the task is started now" in text and "saved while pending" not in text
    assert "Spooled at" not in text and "Spool file:" in text and "No run is queued." in text
    assert edit_preview(idle, **schedule_fields(None, "hour", 2))["basis"] == "start"

    pending = add_task(admin_http, commands, "fit pending", **schedule_fields(whole_seconds_ahead(3600)))
    press(admin_http, pending, "start")
    pending.refresh_from_db()
    text = page(pending)
    assert "Next runs, in the project's time zone" in text
    # (with a problem when the spoolers' heartbeat was flushed with the previous test's data)
    assert pending.spooler_id in text.split("field-spool_entry", 1)[1][:2000]
    data = edit_preview(pending, **schedule_fields(whole_seconds_ahead(7200)))
    assert data["basis"] == "save" and "they replace the queued run" in data["html"]
    # Cancelled entries stay in the spool directory until their time: remove
    # them, so that the session's spool directory holds none for later tests.
    os.unlink(pending.spooler_id)
    press(admin_http, pending, "stop")

    # Running, nothing queued after the run.
    once = add_task(admin_http, commands, "fit once", "tm_sleep", "--seconds 120, --tick 0.2")
    press(admin_http, once, "start")
    wait_for(lambda: Task.objects.get(pk=once.pk).status == Task.Status.STARTED, message="the run")
    text = page(once)
    assert "The task is running and no other run is queued" in text
    assert "Runs if the task is started" not in text
    data = edit_preview(once, **schedule_fields(None, "hour", 1))
    assert data["basis"] == "running" and data["runs"] == []
    press(admin_http, once, "stop")

    # Running, with its next run queued: edits replace the next run, after now.
    start = whole_seconds_ahead(1)
    chain = add_task(
        admin_http,
        commands,
        "fit chain",
        "tm_sleep",
        "--seconds 120, --tick 0.2",
        **schedule_fields(start, "hour", 1),
    )
    press(admin_http, chain, "start")
    wait_for(lambda: Task.objects.get(pk=chain.pk).status == Task.Status.STARTED, message="the chained run")
    assert "Next runs, in the project's time zone" in page(chain)
    now = timezone.now()
    data = edit_preview(chain, **schedule_fields(start, "minute", 20))
    assert data["basis"] == "after" and "Runs after the current one" in data["html"]
    runs = [datetime.fromisoformat(run["at"]) for run in data["runs"]]
    assert len(runs) == 5 and runs[0] == start + timedelta(minutes=20) and runs[0] > now

    def next_entry():
        path = Task.objects.get(pk=chain.pk).spooler_id
        return path if path and os.path.exists(path) else None

    os.unlink(wait_for(next_entry, message="the next run's spool file"))
    press(admin_http, chain, "stop")
    finished_reports(once)
    finished_reports(chain)


# -- recovery ------------------------------------------------------------------------------


def test_emptied_spool_dir_is_repopulated_at_spooler_start(server, admin_http, uwsgi_node, commands):
    # A task of the session's server: another node, which must be left alone.
    foreign = add_task(admin_http, commands, "foreign", **schedule_fields(whole_seconds_ahead(3600)))
    press(admin_http, foreign, "start")
    foreign.refresh_from_db()
    foreign_state = (foreign.run_token, foreign.spooler_id, foreign.spooler_node)

    node = uwsgi_node()
    client = node.admin
    spool_dir = node.spool_dir
    hourly = add_task(
        client, commands, "node hourly", **schedule_fields(whole_seconds_ahead(1800), "hour", 1)
    )
    later = add_task(client, commands, "node once", **schedule_fields(whole_seconds_ahead(3600)))
    for task in (hourly, later):
        press(client, task, "start")
        task.refresh_from_db()
        assert task.spooler_node == node_name(spool_dir)
        assert os.path.dirname(task.spooler_id) == os.path.realpath(spool_dir)
    before = {t.pk: (t.next_datetime, t.run_token) for t in (hourly, later)}
    node.stop()

    # The container lost its spool volume.
    for path in spool_paths(spool_dir):
        path.unlink()

    node = uwsgi_node(spool_dir=spool_dir)
    client = node.admin
    wait_for(
        lambda: all(len(tokens_by_task(spool_dir).get(t.pk, [])) == 1 for t in (hourly, later)),
        message="the spool files to be written again",
    )
    live = tokens_by_task(spool_dir)
    for task in (hourly, later):
        task.refresh_from_db()
        next_run, old_token = before[task.pk]
        assert task.status == Task.Status.SCHEDULED
        assert task.next_datetime == next_run
        assert live[task.pk] == [task.run_token] != [old_token]
        entry = spoolfiles.read(task.spooler_id)
        assert (entry["token"], entry["at"], entry["trigger"]) == (
            task.run_token,
            at_of(next_run),
            "recovery",
        )
    # Two spooler processes recovered at once: still one entry per task.
    assert len(spool_entries(spool_dir)) == 2
    foreign.refresh_from_db()
    assert (foreign.run_token, foreign.spooler_id, foreign.spooler_node) == foreign_state
    assert os.path.exists(foreign.spooler_id)
    tokens = {t.pk: Task.objects.get(pk=t.pk).run_token for t in (hourly, later)}
    node.stop()

    # A restart with the spool files in place respools nothing.
    node = uwsgi_node(spool_dir=spool_dir)
    client = node.admin
    wait_for(
        lambda: SpoolerHeartbeat.objects.filter(node=node_name(spool_dir)).exists(), message="a heartbeat"
    )
    for task in (hourly, later):
        assert Task.objects.get(pk=task.pk).run_token == tokens[task.pk]
    assert len(spool_entries(spool_dir)) == 2
    node.stop()
    press(admin_http, foreign, "stop")


def test_respool_command_repopulates_a_running_node(server, admin_http, uwsgi_node, commands):
    node = uwsgi_node()
    client = node.admin
    spool_dir = node.spool_dir
    soon = whole_seconds_ahead(4)
    due = add_task(client, commands, "due soon", **schedule_fields(soon))
    hourly = add_task(client, commands, "hourly too", **schedule_fields(whole_seconds_ahead(1800), "hour", 1))
    for task in (due, hourly):
        press(client, task, "start")
    for path in spool_paths(spool_dir):
        path.unlink()

    out = StringIO()
    call_command("respool_tasks", "--dry-run", spool_dir=str(spool_dir), stdout=out)
    assert "Would respool 2 task(s)" in out.getvalue()
    assert spool_entries(spool_dir) == {}

    call_command("respool_tasks", spool_dir=str(spool_dir), stdout=out, verbosity=2)
    assert "Respooled 2 task(s) on %s" % node_name(spool_dir) in out.getvalue()
    hourly.refresh_from_db()
    entry = spoolfiles.read(hourly.spooler_id)
    assert (entry["token"], entry["at"]) == (hourly.run_token, at_of(hourly.next_datetime))

    again = StringIO()
    call_command("respool_tasks", spool_dir=str(spool_dir), stdout=again)
    assert "Respooled 0 task(s)" in again.getvalue()

    # The file the command wrote is one uWSGI runs, at its time, once.
    (report,) = finished_reports(due)
    assert report.trigger == Report.Trigger.RECOVERY
    assert report.invocation_datetime >= soon
    wait_for(lambda: list(tokens_by_task(spool_dir)) == [hourly.pk], message="the run's file to go")


def test_killed_spoolers_respool_missing_entries_when_respawned(server, admin_http, uwsgi_node, commands):
    node = uwsgi_node()
    client = node.admin
    spool_dir = node.spool_dir
    task = add_task(client, commands, "respawned", **schedule_fields(whole_seconds_ahead(1800), "day", 1))
    press(client, task, "start")
    task.refresh_from_db()
    old = task.run_token
    os.unlink(task.spooler_id)
    pids = node.spooler_pids()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(node.spooler_pids()) >= len(pids) + 2, message="respawned spoolers")
    wait_for(
        lambda: Task.objects.filter(pk=task.pk).exclude(run_token=old).exclude(spooler_id="").exists(),
        message="the task to be respooled",
    )
    task.refresh_from_db()
    live = tokens_by_task(spool_dir)
    assert list(live) == [task.pk]
    # Exactly one entry carries the current token. Two respawned spoolers can both
    # re-spool before either records its file (seen on MariaDB); the loser's entry
    # carries a superseded token and is consumed without running when due.
    assert live[task.pk].count(task.run_token) == 1
    assert len(live[task.pk]) <= 2
    assert spoolfiles.read(task.spooler_id)["at"] == at_of(task.next_datetime)


def test_admin_shows_a_missing_spool_entry(server, admin_http, commands):
    task = add_task(admin_http, commands, "lost", **schedule_fields(whole_seconds_ahead(3600)))
    press(admin_http, task, "start")
    task.refresh_from_db()
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    assert "spool entry is missing" not in page
    assert task.spooler_id in page
    os.unlink(task.spooler_id)
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    assert "Its spool entry is missing" in page
    listing = admin_http.get(TASK_URL).text
    assert "tm-entry-problem" in listing

    # A node that has not reported for longer than NODE_TIMEOUT is named.
    SpoolerHeartbeat.objects.update_or_create(
        node="elsewhere:/var/spool/tm", defaults={"last_seen": timezone.now() - timedelta(hours=2)}
    )
    Task.objects.filter(pk=task.pk).update(spooler_node="elsewhere:/var/spool/tm")
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    assert "Its spooler node elsewhere:/var/spool/tm was last seen" in html.unescape(page)
    press(admin_http, task, "stop")


def test_concurrent_recoveries_respool_once(commands, tmp_path, monkeypatch):
    """Two processes recovering the same node at once (two spoolers starting) write one entry.

    Both are held right after finding the entry missing, so both try to take
    the task: the conditional UPDATE on the old token lets one win.
    """
    import threading

    from django.db import connection

    from taskmanager import recovery, spoolfiles

    spool_dir = str(tmp_path)
    task = make_task(
        commands,
        "contended",
        status=Task.Status.SPOOLED,
        run_token="old",
        next_datetime=timezone.now() + timedelta(hours=1),
        spooler_node=node_name(spool_dir),
        spooler_id=os.path.join(spool_dir, "uwsgi_spoolfile_on_gone"),
    )
    both_checked = threading.Barrier(2, timeout=10)
    real_is_live = spoolfiles.is_live

    def is_live_then_wait(path, directory):
        live = real_is_live(path, directory)
        both_checked.wait()
        return live

    monkeypatch.setattr(spoolfiles, "is_live", is_live_then_wait)

    def write(task_id, token, trigger, at):
        return spoolfiles.write(spool_dir, spoolfiles.make_entry(task_id, token, trigger, at), at)

    results = []

    def recover():
        try:
            results.append(recovery.respool(spool_dir, write))
        finally:
            connection.close()

    threads = [threading.Thread(target=recover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(len(r) for r in results) == [0, 1]
    task.refresh_from_db()
    assert tokens_by_task(spool_dir) == {task.pk: [task.run_token]}
    assert task.run_token != "old"
    assert spoolfiles.read(task.spooler_id)["trigger"] == "recovery"

"""One clock (issue 13, item 11): nodes whose clocks differ, on one database.

A uWSGI node runs under libfaketime with its clock 90 s ahead and a host
name of its own (another machine, ``tests/support/clock.py``) beside a normal
node, both with second-scale recovery and heartbeat settings. Every time
compared across processes is the database server's: the fast node's
recovery passes close no healthy run of the other node, a one-shot task
started through it does not run before its time by the database's clock, and
the offset it measures is recorded, shown by the admin and reported at start.

SQLite has no server clock (each process reads its own): there a node under
libfaketime fakes the "database clock" too, so the tests with such a node
need PostgreSQL or MariaDB (``TM_TEST_DB``).
"""

import os
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Exists, OuterRef
from django.db.models.functions import Now
from django.utils import timezone

from taskmanager import dbclock
from taskmanager.models import Report, SpoolerHeartbeat, Task
from taskmanager.schedule import project_tz

from .support.admin import TASK_URL, add_task, press, start_running
from .support.clock import LIBFAKETIME, database_now, skewed_env
from .support.spool import node_name
from .support.waits import finished_report, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_sensitive]

#: How far the fast node's clock is ahead, in seconds.
AHEAD = 90
FAST_HOST = "fast-clock.invalid"
#: Second-scale settings: a recovery pass every second, a heartbeat every half
#: second, a run without a heartbeat for 5 s is taken for interrupted.
SETTINGS = {
    "TASKMANAGER_RECOVERY_SECONDS": 1,
    "TASKMANAGER_HEARTBEAT_SECONDS": 0.5,
    "TASKMANAGER_HEARTBEAT_TIMEOUT": 5,
}


@pytest.fixture
def server_clock():
    """Skip where a node under libfaketime cannot be another machine on one database."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server clock: a node under libfaketime fakes the database's clock too")
    if not LIBFAKETIME:
        pytest.skip("libfaketime is not installed (.ci/run installs it)")


def start_pair(uwsgi_node, before_fast=None):
    """Start a normal node, call ``before_fast(normal)``, then start a node whose clock is AHEAD s ahead.

    Return (normal, fast).
    """
    normal = uwsgi_node(settings=SETTINGS)
    if before_fast is not None:
        before_fast(normal)
    fast = uwsgi_node(settings=SETTINGS, env=skewed_env(AHEAD, FAST_HOST))
    return normal, fast


def fast_node_id(fast) -> str:
    return "%s:%s" % (FAST_HOST, os.path.abspath(fast.spool_dir))


def heartbeats_of(node_id: str, count: int):
    """Wait until the node's spooler heartbeat was written ``count`` more times (one per recovery pass)."""
    seen = set()

    def more():
        seen.add(SpoolerHeartbeat.objects.filter(node=node_id).values_list("last_seen", flat=True).first())
        return len(seen - {None}) > count

    wait_for(more, timeout=30, message="%d recovery passes of %s" % (count, node_id))


def test_fast_node_closes_no_healthy_run_and_runs_nothing_early(server_clock, uwsgi_node, commands):
    long_run = []
    # A long run on the normal node (a heartbeat every half second) before the fast node starts.
    normal, fast = start_pair(
        uwsgi_node, lambda node: long_run.extend(start_running(node.admin, commands, "clock-long"))
    )
    long_task, running = long_run

    # A one-shot task started through the fast node, due 5 s ahead by the database's clock.
    due = (database_now() + timedelta(seconds=5)).replace(microsecond=0)
    local = due.astimezone(project_tz())
    when = {"scheduling_0": local.strftime("%Y-%m-%d"), "scheduling_1": local.strftime("%H:%M:%S")}
    one_shot = add_task(fast.admin, commands, "clock-one-shot", "tm_ok", **when)
    started = press(fast.admin, one_shot, "start").text
    # (Its node, were it to go by its own clock, would take the time as past and start it at once.)
    assert "is scheduled" in started or "was started" in started
    # Each probe reads whether the task has run and the database's clock in one query.
    probe = Task.objects.filter(pk=one_shot.pk).annotate(
        db_now=Now(), ran=Exists(Report.objects.filter(task=OuterRef("pk")))
    )
    early = []

    def has_run():
        db_now, ran = probe.values_list("db_now", "ran").get()
        if ran and db_now < due:
            early.append(db_now)
        return ran

    wait_for(has_run, timeout=30, message="the one-shot task's run")
    report = finished_report(one_shot)
    assert not early, "ran at %s by the database's clock, before %s" % (early[0], due)
    assert report.invocation_datetime >= due
    assert report.result == "OK"

    # Several recovery passes of the fast node while the normal node's run goes on.
    heartbeats_of(fast_node_id(fast), 3)
    running.refresh_from_db()
    assert running.finished_datetime is None, running.end_reason
    # No run of the normal node closed by anyone. (Not "interrupted" absent from the fast node's
    # log: its pass may rightly close a run an earlier test's stopped node left on this database.)
    closed = Report.objects.filter(supervisor_pid__in=normal.spooler_pids(), end_kind="interrupted")
    assert not closed.exists(), list(closed.values_list("pk", "end_reason"))

    press(normal.admin, long_task, "stop")
    ended = finished_report(long_task)
    assert ended.pk == running.pk
    assert ended.end_reason == "stopped by user admin"


def test_clock_offset_recorded_per_node_shown_and_checked_at_start(server_clock, uwsgi_node, commands):
    normal, fast = start_pair(uwsgi_node)
    normal_id = node_name(normal.spool_dir)
    fast_id = fast_node_id(fast)

    def offsets():
        rows = dict(
            SpoolerHeartbeat.objects.filter(clock_offset__isnull=False).values_list("node", "clock_offset")
        )
        return rows if {normal_id, fast_id} <= set(rows) else None

    found = wait_for(offsets, message="the clock offsets of both nodes")
    # The database's clock minus the node's: about -AHEAD for the fast node, about 0 for the other.
    assert abs(found[fast_id] + AHEAD) < 5, found
    assert abs(found[normal_id]) < 5, found

    # The admin's banner names the node whose clock is off, on any node's pages.
    page = normal.admin.get(TASK_URL)
    assert page.status == 200
    assert "tm-clock-banner" in page.text
    banner = page.text.split("tm-clock-banner", 1)[1].split("</ul>", 1)[0]
    assert fast_id in banner and "%d s ahead" % AHEAD in banner, banner
    assert normal_id not in banner

    # The system check at uWSGI start, on the fast node only.
    wait_for(lambda: "taskmanager.W017" in fast.log(), message="W017 in the fast node's log")
    assert "taskmanager.W017" not in normal.log()


# -- taskmanager.dbclock in this process ---------------------------------------------


def test_offset_to_the_database_clock_is_measured_and_applied(monkeypatch):
    # This process and the database share this machine's clock: no offset past the query's noise.
    assert abs(dbclock.measure()) < 1
    assert abs((dbclock.now() - database_now_or_local()).total_seconds()) < 1
    monkeypatch.setattr(dbclock, "offset", lambda refresh=True: -AHEAD - 0.4)
    due = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    # uWSGI's "at" on a clock AHEAD s ahead, to the whole second: the measure's fraction is noise.
    assert dbclock.to_local(due) == due + timedelta(seconds=AHEAD)
    monkeypatch.setattr(dbclock, "offset", lambda refresh=True: 0.0004)
    assert dbclock.to_local(due) == due


def database_now_or_local():
    return timezone.now() if connection.vendor == "sqlite" else database_now()

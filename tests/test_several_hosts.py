"""Several machines, one task manager (issue 15): uWSGI nodes each in a UTS + PID namespace of its own.

Each node is a machine (``tests/support/hosts.py``): its own host name, pids
the others cannot see, killed whole by SIGKILL to its namespace's init. The
nodes share the test database (PostgreSQL or MariaDB; on SQLite they share
the file, which works on one machine only, the tests run there too) and
nothing else but the file system they do not rely on. Second-scale settings:
a recovery pass every second, a heartbeat every half second, a run without
one for 5 s is taken for interrupted.

Every slot of every task is counted (``tests/support/slots.py``): none
doubled, none missing beyond the coalescing rule.

The last four scenarios need the other passes of issue 15: the takeover (the
database as queue of record: a pending run of a dead node, a Start through a
web-only node) and the fencing (node identity beyond the host name, a holder
cut from the database stopping its own command).
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.conf import settings as django_settings

from taskmanager import dbclock
from taskmanager.models import Report, SpoolerHeartbeat, Task

from .support.admin import TASK_URL, add_task, press, running_report
from .support.adminclient import client_for
from .support.objects import make_superuser
from .support.procs import gone
from .support.slots import slot_ledger
from .support.spool import spool_entries
from .support.tcpproxy import TcpProxy
from .support.waits import finished_report, finished_reports, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_sensitive]

SETTINGS = {
    "TASKMANAGER_RECOVERY_SECONDS": 1,
    "TASKMANAGER_HEARTBEAT_SECONDS": 0.5,
    "TASKMANAGER_HEARTBEAT_TIMEOUT": 5,
    "TASKMANAGER_NODE_TIMEOUT": 5,
    # The takeover pass (issue 15): a pending run overdue by this grace is taken by any spooler node.
    "TASKMANAGER_TAKEOVER_GRACE": 2,
}
LONG = "--seconds 120, --tick 0.2"
PERIODIC = {"repetition_period": "minute", "repetition_rate": "1"}


@pytest.fixture(scope="module")
def machines(hosts):
    """Two machines, web and spooler each, shared by the module's tests."""
    return hosts("tm-host-a", "tm-host-b", settings=SETTINGS)


@pytest.fixture
def pair(machines, transactional_db):
    """The module's machines, each up (a test that failed midway may have left one dead) and logged in."""
    make_superuser()
    for host in machines:
        if not host.alive:
            host.restart()
        host.admin = client_for(host.url, "admin")
    return machines


def login(*hosts):
    make_superuser()
    for host in hosts:
        host.admin = client_for(host.url, "admin")
    return hosts


def entries_of_task(host, task) -> list[dict]:
    return [e for e in spool_entries(host.spool_dir).values() if e["task"] == str(task.pk)]


def running(task, exclude=()):
    """The task's running report whose command has printed, other than the ``exclude`` pks, or None."""
    return (
        Report.objects.filter(task=task, finished_datetime__isnull=True, pid__isnull=False, lines__gte=1)
        .exclude(pk__in=exclude)
        .first()
    )


def recovery_passes(host, count):
    """Wait until ``host``'s spooler heartbeat was written ``count`` more times (one per recovery pass)."""
    seen = set()

    def more():
        seen.add(
            SpoolerHeartbeat.objects.filter(node=host.node_id).values_list("last_seen", flat=True).first()
        )
        return len(seen - {None}) > count

    wait_for(more, timeout=30, message="%d recovery passes of %s" % (count, host.name))


# -- what holds on main ----------------------------------------------------------------


def test_host_killed_mid_run_is_closed_interrupted_elsewhere_and_back_runs_no_slot_twice(pair, commands):
    a, b = pair
    one_shot = add_task(a.admin, commands, "hosts-one-shot", "tm_sleep", LONG)
    periodic = add_task(a.admin, commands, "hosts-periodic", "tm_sleep", LONG, **PERIODIC)
    # The grid's next slot comes 20 s from now (minutes are the shortest period): Start queues it
    # on A, and "Run now" runs the task on A at once, outside the grid, until A dies.
    started_at = dbclock.now()
    anchor = (started_at - timedelta(seconds=40)).replace(microsecond=0)
    Task.objects.filter(pk=periodic.pk).update(scheduling=anchor)
    assert "was started" in press(a.admin, one_shot, "start").text
    assert "is scheduled" in press(a.admin, periodic, "start").text
    assert "will run now" in press(a.admin, periodic, "run-now").text
    runs = [running_report(one_shot), running_report(periodic)]
    assert {r.host for r in runs} == {a.name}
    commands_on_a = [a.host_pid(r.pid) for r in runs]
    assert None not in commands_on_a

    a.kill()
    killed_at = dbclock.now()
    assert all(gone(pid) for pid in commands_on_a)
    # B, the only machine left, closes both runs as interrupted (their heartbeats stop).
    for run in runs:
        closed = wait_for(
            lambda run=run: Report.objects.filter(pk=run.pk, finished_datetime__isnull=False).first(),
            timeout=30,
            message="the run on the dead host closed",
        )
        assert (closed.result, closed.end_reason) == ("FAILED", "interrupted")

    a.restart()
    back_at = dbclock.now()
    # A's spooler meets the killed one-shot run's entry again: its token is stale, it is dropped, not run.
    wait_for(lambda: not entries_of_task(a, one_shot), message="the killed run's entry dropped")
    # The periodic task's slot (queued on A by Start) runs once, on A (at once if it came while A was dead).
    slot_run = wait_for(lambda: running(periodic, exclude=[runs[1].pk]), timeout=60, message="the slot's run")
    assert slot_run.host == a.name
    assert "is being stopped" in press(b.admin, periodic, "stop").text
    finished_reports(periodic, 2)

    assert Report.objects.filter(task=one_shot).count() == 1
    assert Report.objects.filter(task=periodic).count() == 2
    ledger = slot_ledger(periodic, dbclock.now(), since=started_at, excused=[(killed_at, back_at)])
    assert len(ledger["slots"]) == 1, ledger
    assert not ledger["doubled"] and not ledger["missing"], ledger


def test_stop_through_one_host_kills_the_command_on_another(pair, commands):
    a, b = pair
    task = add_task(a.admin, commands, "hosts-stop-across", "tm_sleep", LONG)
    press(a.admin, task, "start")
    run = running_report(task)
    assert run.host == a.name
    command = a.host_pid(run.pid)
    assert command is not None

    assert "is being stopped" in press(b.admin, task, "stop").text
    wait_for(lambda: gone(command), message="the command on A to end")
    ended = finished_report(task)
    assert ended.pk == run.pk
    assert ended.end_reason == "stopped by user admin"
    assert Report.objects.filter(task=task).count() == 1


def test_simultaneous_starts_across_hosts_make_one_run(pair, commands):
    a, b = pair
    task = add_task(a.admin, commands, "hosts-fifty-starts", "tm_sleep", LONG)
    clients = [a.admin, b.admin] * 25
    barrier = threading.Barrier(len(clients))

    def start(client):
        barrier.wait()
        # Not followed: the 25 requests of a host share one session, and a "was started" message
        # may be shown by two of their redirects at once; the runs are what count.
        return client.post(TASK_URL + "%d/start/" % task.pk, follow=False).status

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(start, clients))
    assert set(answers) == {302}, answers

    run = running_report(task)
    # One Start went through: one entry was spooled (it stays while its run goes on).
    assert len(entries_of_task(a, task)) + len(entries_of_task(b, task)) == 1
    recovery_passes(a, 2)
    recovery_passes(b, 2)
    assert Report.objects.filter(task=task).count() == 1
    press(a.admin, task, "stop")
    assert finished_report(task).pk == run.pk
    wait_for(lambda: not entries_of_task(a, task) and not entries_of_task(b, task), message="spools empty")
    assert Report.objects.filter(task=task).count() == 1


# -- with the takeover and fencing passes of issue 15 ----------------------------------


def test_two_hosts_with_one_host_name_never_judge_each_others_runs_by_pid(hosts, transactional_db, commands):
    # One spooler process each: the supervisor on the first twin and the recovery pass of the
    # second both have pid 3 in their own namespaces, as in two containers of one image.
    twins = hosts("tm-twin", "tm-twin", settings=SETTINGS, spooler_processes=1)
    try:
        first, second = login(*twins)
        task = add_task(first.admin, commands, "hosts-twin-run", "tm_sleep", LONG)
        press(first.admin, task, "start")
        # (Not running_report(): without node identity the other twin closed the run before its first line.)
        run = wait_for(lambda: Report.objects.filter(task=task, pid__isnull=False).first(), message="the run")
        # The other twin sees a run of "its" host name whose pids it cannot find: not a proof of death.
        recovery_passes(second, 4)
        run.refresh_from_db()
        assert run.finished_datetime is None, run.end_reason
        assert "is being stopped" in press(second.admin, task, "stop").text
        assert finished_report(task).end_reason == "stopped by user admin"
    finally:
        for twin in twins:
            twin.stop()


def test_host_killed_with_periodic_tasks_pending_fails_over(pair, commands):
    a, b = pair
    task = add_task(a.admin, commands, "hosts-failover", "tm_ok", **PERIODIC)
    anchor = (dbclock.now() + timedelta(seconds=4)).replace(microsecond=0)
    Task.objects.filter(pk=task.pk).update(scheduling=anchor)
    assert "is scheduled" in press(a.admin, task, "start").text
    a.kill()
    try:
        # Its slot comes while A is dead: B takes it once it is overdue by the grace.
        taken = finished_report(task, timeout=15)
        assert taken.host == b.name
    finally:
        a.restart()
    # A is back with the entry of that slot: it is not run again.
    wait_for(lambda: not entries_of_task(a, task), message="A's superseded entry dropped")
    ledger = slot_ledger(task, dbclock.now(), since=anchor)
    assert not ledger["doubled"] and not ledger["missing"], ledger


def test_start_through_a_web_only_host_runs_on_a_spooler_host(pair, hosts, commands):
    a, b = pair
    (web,) = hosts("tm-web-only", settings=SETTINGS, spooler_processes=0)
    try:
        login(web)
        task = add_task(web.admin, commands, "hosts-web-only-start", "tm_ok")
        # No spool file on a web-only node: the row is the queue, a spooler host's take-over pass runs it.
        assert "is queued; a spooler node will take it." in press(web.admin, task, "start").text
        report = finished_report(task, timeout=15)
        # Any spooler node on the database may take the row (the session's
        # own server is one too); the web-only node never runs it.
        assert report.host != web.name
        assert Report.objects.filter(task=task).count() == 1
    finally:
        web.stop()


def test_host_cut_from_the_database_stops_its_command_and_writes_nothing_after(pair, hosts, commands):
    a, b = pair
    database = django_settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        pytest.skip("SQLite is a file: a node cannot be cut from it")
    relay = TcpProxy(database["HOST"], database["PORT"]).start()
    through_relay = {"default": {**database, "HOST": "127.0.0.1", "PORT": relay.port}}
    settings = {**SETTINGS, "DATABASES": json.loads(json.dumps(through_relay, default=str))}
    (cut,) = hosts("tm-host-cut", settings=settings)
    try:
        login(cut)
        task = add_task(cut.admin, commands, "hosts-cut-run", "tm_sleep", LONG)
        press(cut.admin, task, "start")
        run = running_report(task)
        command = cut.host_pid(run.pid)
        relay.cut()
        # The holder cannot renew its heartbeat: it kills its own command before another node
        # may take the run for interrupted.
        wait_for(lambda: gone(command), timeout=15, message="the cut host's command to be fenced")
        closed = finished_report(task, timeout=30)
        assert closed.end_reason == "interrupted"
        relay.restore()
        recovery_passes(cut, 2)
        closed.refresh_from_db()
        assert closed.end_reason == "interrupted" and closed.result == "FAILED"
        assert Report.objects.filter(task=task).count() == 1
    finally:
        cut.stop()
        relay.close()

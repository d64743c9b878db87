"""Stop from any node, timeouts, crashes and restarts, exactly one run (issue 4).

Every test drives a real uWSGI server: the session's one (``server``), or
extra nodes started with the ``uwsgi_node`` fixture when a test kills spoolers, reloads
the master, needs other settings, or needs separate web and spooler nodes.
The issue-2 cases (results, sys.exit, os._exit, two Start presses, Stop of a
SIGTERM-ignoring command, stale tokens) are in test_end_to_end.py.
"""

import os
import signal
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from taskmanager import processes
from taskmanager.models import Command, LogLine, Report, Task

from .support.admin import add_task, bulk_action, press, start_running
from .support.adminclient import AdminClient
from .support.objects import log_texts, make_report, make_task
from .support.procs import children, gone, live_spooler_pids, parent_pid, vm_kib, zombie_children
from .support.recorder import events
from .support.scale import scaled
from .support.spool import spool_entries, spool_is_empty
from .support.waits import finished_report, recovery_ticks, running_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


# -- helpers -----------------------------------------------------------------------


def is_sleep_300(pid: int) -> bool:
    try:
        return Path("/proc/%d/cmdline" % pid).read_bytes() == b"sleep\x00300\x00" and not gone(pid)
    except OSError:
        return False


def periodic_fields(minutes=1):
    """Admin form fields of a task repeating every ``minutes`` minutes from its Start."""
    return {"repetition_period": "minute", "repetition_rate": str(minutes)}


def make_tasks(commands, prefix, count, command="tm_noop"):
    Task.objects.bulk_create(
        Task(name="%s-%04d" % (prefix, n), command=commands[command]) for n in range(count)
    )
    return list(Task.objects.filter(name__startswith=prefix + "-").order_by("pk"))


# -- Stop from another node --------------------------------------------------------


@pytest.mark.db_sensitive
@pytest.mark.parametrize("ignore_term", [False, True], ids=["normal", "ignores-sigterm"])
def test_stop_pressed_on_web_only_node_stops_run_on_spooler_node(uwsgi_node, commands, ignore_term):
    spooler_node = uwsgi_node(http=False)
    # The web node has no spooler processes; it writes spool files into the
    # spooler node's directory (--spooler-external) and never runs a command.
    web = uwsgi_node(spooler_processes=0, extra_args=["--spooler-external", str(spooler_node.spool_dir)])
    client = web.admin
    arguments = "--seconds 120, --tick 0.2" + (", --ignore-term" if ignore_term else "")
    task = add_task(client, commands, "remote-stop-%s" % ignore_term, "tm_sleep", arguments)
    assert "was started" in press(client, task, "start").text
    report = running_report(task)
    assert report.supervisor_pid in spooler_node.spooler_pids()
    assert not web.spooler_pids()

    resp = press(client, task, "stop")
    assert "is being stopped" in resp.text
    report = finished_report(task)
    assert report.result == "FAILED"
    assert report.end_reason == "stopped by user admin"
    assert report.stopped_by.username == "admin"
    assert report.stop_requested_at is not None
    assert "Stop requested by admin." in log_texts(report)
    wait_for(lambda: gone(report.pid), message="the command's process to be gone")
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert task.last_result == "FAILED"


@pytest.mark.db_sensitive
def test_stopped_periodic_task_is_not_respooled(uwsgi_node, commands):
    spooler_node = uwsgi_node(http=False)
    web = uwsgi_node(spooler_processes=0, extra_args=["--spooler-external", str(spooler_node.spool_dir)])
    client = web.admin
    task, report = start_running(client, commands, "periodic-stop", **periodic_fields())
    # The next slot was spooled when this run was claimed.
    task.refresh_from_db()
    assert task.status == Task.Status.STARTED and task.run_token and task.next_datetime
    # (The running entry's file stays until its run ends.)
    assert task.run_token in [e["token"] for e in spool_entries(spooler_node.spool_dir).values()]

    press(client, task, "stop")
    report = finished_report(task)
    assert report.end_reason == "stopped by user admin"
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert task.run_token == "" and task.next_datetime is None
    # The entry of the next slot is still on disk, but stale: it will be
    # consumed without running (test_end_to_end covers stale entries).
    for entry in spool_entries(spooler_node.spool_dir).values():
        assert entry["token"] != task.run_token


def test_node_without_spooler_refuses_start_when_not_web_only(uwsgi_node, commands):
    # Detected web-only nodes leave the run to a spooler node (test_takeover); one
    # that says it is not web-only (TASKMANAGER_WEB_ONLY = False) refuses.
    web = uwsgi_node(settings={"TASKMANAGER_WEB_ONLY": False}, spooler_processes=0)
    client = web.admin
    task = add_task(client, commands, "nowhere", "tm_ok")
    resp = press(client, task, "start")
    assert "was not started" in resp.text
    assert "no spooler configured" in resp.text
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert not Report.objects.filter(task=task).exists()


# -- Timeouts and output bounds ----------------------------------------------------


@pytest.mark.db_sensitive
@pytest.mark.parametrize("ignore_term", [False, True], ids=["normal", "ignores-sigterm"])
def test_task_timeout_terminates_the_run(server, admin_http, commands, ignore_term):
    arguments = "--seconds 120, --tick 0.2" + (", --ignore-term" if ignore_term else "")
    task = add_task(admin_http, commands, "slow-%s" % ignore_term, "tm_sleep", arguments, timeout="1")
    press(admin_http, task, "start")
    report = finished_report(task)
    assert report.result == "FAILED"
    assert report.end_reason == "timed out after 1 seconds"
    assert "Timed out after 1 seconds: terminating the command." in log_texts(report)
    assert gone(report.pid)
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE


def test_timeout_kills_a_command_that_left_its_process_group(server, admin_http, commands):
    task = add_task(admin_http, commands, "escapee", "tm_leave_group", timeout="1")
    press(admin_http, task, "start")
    report = finished_report(task)
    assert report.end_reason == "timed out after 1 seconds"
    assert log_texts(report)[0].startswith("left the group")
    assert gone(report.pid)
    assert not gone(report.supervisor_pid)


def test_endless_output_is_capped_and_default_timeout_applies(uwsgi_node, commands):
    cap = 64 * 1024
    instance = uwsgi_node(
        spooler_processes=1,
        settings={"TASKMANAGER_MAX_LOG_BYTES": cap, "TASKMANAGER_DEFAULT_TIMEOUT": 3},
    )
    client = instance.admin
    (spooler,) = live_spooler_pids(instance)
    task = add_task(client, commands, "flood", "tm_flood", "--width 100")
    assert task.timeout is None
    press(client, task, "start")
    running_report(task)
    hwm_before = vm_kib(spooler, "VmHWM")
    report = finished_report(task)
    assert report.end_reason == "timed out after 3 seconds"
    stored = LogLine.objects.filter(report=report)
    markers = [line for line in log_texts(report) if "reached its size limit" in line]
    assert len(markers) == 1, markers
    data_lines = stored.exclude(stream=LogLine.Stream.SYSTEM)
    stored_bytes = sum(len(t.encode()) for t in data_lines.values_list("text", flat=True))
    assert stored_bytes <= cap
    # Lines past the cap are counted: many times more than were stored.
    assert report.lines > 10 * data_lines.count()
    # The supervisor kept none of it in memory (report.lines * 100 bytes
    # went through it: tens of megabytes).
    assert vm_kib(spooler, "VmHWM") - hwm_before < 16 * 1024, report.lines


def test_exited_orphans_are_reaped_while_the_run_goes_on(server, admin_http, commands, tmp_path):
    """Orphans that exit do not stay zombies of the spooler until the run ends (issue 13, item 4)."""
    # The command lingers until the test releases it (the run cannot end
    # before the reaping is seen, however slow the machine).
    release = tmp_path / "release"
    arguments = "--count 0, --brief 200, --linger 600, --until %s" % release
    task, report = start_running(admin_http, commands, "brief-orphans", "tm_orphan", arguments)
    # The orphans' reaper, a subreaper: the command's parent, the supervisor's
    # fork server (or the supervisor itself, without one).
    reaper = parent_pid(report.pid)
    assert reaper in (report.supervisor_pid, *children(report.supervisor_pid))
    wait_for(lambda: "200 brief orphans started" in log_texts(report), message="the orphans to be started")
    # It adopts the orphans: once all 200 are reaped, the command is its only child.
    wait_for(lambda: children(reaper) == [report.pid], message="the exited orphans to be reaped")
    # Reaped while the run went on, not by the sweep at its end.
    assert Report.objects.get(pk=report.pk).finished_datetime is None
    release.touch()
    report = finished_report(task)
    assert (report.result, report.end_reason) == ("OK", "completed"), log_texts(report)[-5:]
    assert not [t for t in log_texts(report) if "outlived" in t]
    assert zombie_children(reaper) == 0


# -- Crashes and restarts ----------------------------------------------------------


@pytest.mark.db_sensitive
@pytest.mark.parametrize("setsid", [False, True], ids=["in-group", "setsid"])
def test_spooler_killed_mid_run_is_recovered(uwsgi_node, commands, setsid, webhook):
    # A host name of its own, as in test_notifications: the session's shared server (no webhook)
    # must not judge this run by its pid and close it first.
    instance = uwsgi_node(
        spooler_processes=1,
        settings={"TASKMANAGER_NOTIFY_WEBHOOK_URL": webhook.url + "/hook"},
        env={"TM_TEST_HOSTNAME": "killed-spooler.invalid"},
    )
    client = instance.admin
    arguments = "--count 1, --linger 120" + (", --setsid" if setsid else "")
    task, report = start_running(client, commands, "killed-%s" % setsid, "tm_orphan", arguments, notify="on")
    orphan = int(log_texts(report)[0].split()[-1])
    assert is_sleep_300(orphan)
    supervisor = report.supervisor_pid

    os.kill(supervisor, signal.SIGKILL)
    report = finished_report(task)
    assert report.result == "FAILED"
    assert report.end_reason == "interrupted"
    assert any("Interrupted: its supervisor (pid %d" % supervisor in t for t in log_texts(report))
    wait_for(lambda: gone(report.pid), message="the command's child to be gone")
    wait_for(lambda: not is_sleep_300(orphan), message="the subprocess to be killed")
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert task.last_result == "FAILED"
    # An interrupted run is a failure like any other for notifications.
    wait_for(lambda: events(webhook) == [("failure", report.pk)], message="the failure notice")
    # The spool file of the interrupted run was run again by the new spooler,
    # found stale and consumed: no second run, no loop.
    wait_for(lambda: spool_is_empty(instance.spool_dir), message="the spool file to be consumed")
    assert Report.objects.filter(task=task).count() == 1
    # The new spooler works.
    other = add_task(client, commands, "after-kill-%s" % setsid, "tm_ok")
    press(client, other, "start")
    assert finished_report(other).result == "OK"


@pytest.mark.db_sensitive
def test_reload_interrupts_run_and_periodic_task_continues(uwsgi_node, commands):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    task, report = start_running(client, commands, "reloaded", **periodic_fields())
    task.refresh_from_db()
    next_slot = task.next_datetime
    assert next_slot > timezone.now()

    os.kill(instance.proc.pid, signal.SIGHUP)  # graceful reload: uWSGI SIGKILLs its spoolers
    report = finished_report(task)
    assert report.end_reason == "interrupted"
    assert report.result == "FAILED"
    assert gone(report.pid)
    task.refresh_from_db()
    # The periodic chain goes on at its next slot, whose entry is on disk.
    assert task.status == Task.Status.SPOOLED
    assert task.next_datetime == next_slot
    tokens = [e["token"] for e in spool_entries(instance.spool_dir).values() if e["task"] == str(task.pk)]
    assert task.run_token in tokens
    assert Report.objects.filter(task=task).count() == 1


@pytest.mark.db_sensitive
def test_periodic_recovery_uses_heartbeat_for_other_hosts_and_pid_here(uwsgi_node, commands):
    tasks = {
        name: make_task(commands, name, status=Task.Status.STARTED)
        for name in ("stale-remote", "fresh-remote", "dead-local", "live-local")
    }
    task_ids = {name: task.pk for name, task in tasks.items()}
    now = timezone.now()
    old = now - timedelta(seconds=30)
    mine = processes.start_time(os.getpid())
    # A process that existed and is gone: its pid and start time are evidence.
    probe = os.fork()
    if probe == 0:
        os._exit(0)
    probe_started = processes.start_time(probe)
    os.waitpid(probe, 0)
    host = socket.gethostname()
    remote = {"host": "elsewhere.invalid", "supervisor_started": 1.0}
    supervisors = {
        "stale-remote": {**remote, "supervisor_pid": 4242, "heartbeat": old},
        "fresh-remote": {**remote, "supervisor_pid": 4243, "heartbeat": now},
        "dead-local": {
            "host": host,
            "supervisor_pid": probe,
            "supervisor_started": probe_started,
            "heartbeat": now,
        },
        # This test process plays a live supervisor on this host, with an old heartbeat.
        "live-local": {
            "host": host,
            "supervisor_pid": os.getpid(),
            "supervisor_started": mine,
            "heartbeat": old,
        },
    }
    reports = {
        name: make_report(tasks[name], running=True, alive=False, invocation_datetime=old, **supervisor)
        for name, supervisor in supervisors.items()
    }
    fresh = reports["fresh-remote"]
    stop = threading.Event()

    def keep_beating():  # the fresh remote supervisor stays alive
        while not stop.is_set():
            Report.objects.filter(pk=fresh.pk).update(heartbeat=timezone.now())
            connection.close()
            stop.wait(0.3)

    beater = threading.Thread(target=keep_beating)
    beater.start()
    try:
        # Spooler start runs recovery too; a start time in the past
        # (recovery timer at 1 s, heartbeat timeout 5 s) shows the timer works.
        instance = uwsgi_node(
            http=False, settings={"TASKMANAGER_RECOVERY_SECONDS": 1, "TASKMANAGER_HEARTBEAT_TIMEOUT": 5}
        )

        def closed(name):
            return Report.objects.filter(task_id=task_ids[name], end_reason="interrupted").exists()

        wait_for(lambda: closed("stale-remote") and closed("dead-local"), message="recovery to close runs")
        # More passes, which must leave the live runs alone.
        recovery_ticks(instance, 4)
    finally:
        stop.set()
        beater.join()
    assert not closed("fresh-remote")
    assert not closed("live-local")
    stale = Report.objects.get(task_id=task_ids["stale-remote"])
    assert stale.result == "FAILED"
    assert any(
        "no heartbeat from its supervisor (pid 4242 on elsewhere.invalid)" in t for t in log_texts(stale)
    )
    assert Task.objects.get(pk=task_ids["stale-remote"]).status == Task.Status.IDLE
    assert Task.objects.get(pk=task_ids["dead-local"]).status == Task.Status.IDLE
    assert Task.objects.get(pk=task_ids["live-local"]).status == Task.Status.STARTED


@pytest.mark.db_sensitive
def test_timer_recovery_closes_a_run_of_a_node_that_died(uwsgi_node, commands):
    """A whole spooler node dies mid-run; another node's timer closes the run."""
    first = uwsgi_node(spooler_processes=1)
    client = first.admin
    task, report = start_running(client, commands, "node-dies")
    # Pretend it ran on another host, then kill that whole node: no spooler
    # restarts there, so only the heartbeat can tell.
    Report.objects.filter(pk=report.pk).update(host="gone.invalid")
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=scaled(60))
    wait_for(lambda: gone(report.pid), message="the child to die with its supervisor")
    # The test keeps the dead run's heartbeat fresh until the new node's
    # spooler has started and run a timer tick (so its start-up recovery is
    # over, however long the start took): only the periodic pass (the uWSGI
    # timer) can then close it, once the heartbeat is stale.
    stop = threading.Event()

    def keep_beating():
        while not stop.is_set():
            Report.objects.filter(pk=report.pk).update(heartbeat=timezone.now())
            connection.close()
            stop.wait(0.3)

    beater = threading.Thread(target=keep_beating)
    beater.start()
    try:
        second = uwsgi_node(
            http=False,
            spooler_processes=1,
            settings={"TASKMANAGER_RECOVERY_SECONDS": 1, "TASKMANAGER_HEARTBEAT_TIMEOUT": 6},
        )
        recovery_ticks(second, 2)
        assert Report.objects.get(pk=report.pk).finished_datetime is None, (
            "closed while its heartbeat was fresh"
        )
    finally:
        stop.set()
        beater.join()
    report = finished_report(task)
    assert report.end_reason == "interrupted"
    assert any("no heartbeat from its supervisor" in t for t in log_texts(report))
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE


@pytest.mark.parametrize(
    "command, arguments, result, reason",
    [
        ("tm_segfault", "", "FAILED", "signal SIGSEGV"),
        ("tm_orphan", "--count 2", "OK", "completed"),
        ("tm_orphan", "--count 2, --setsid", "OK", "completed"),
    ],
    ids=["segfault", "orphans-in-group", "orphans-setsid"],
)
def test_crashing_or_leaking_commands_leave_nothing_behind(
    server, admin_http, commands, command, arguments, result, reason
):
    spoolers = live_spooler_pids(server)
    name = "crash-%s-%s" % (command, arguments.replace(" ", "").replace(",", ""))
    task = add_task(admin_http, commands, name, command, arguments)
    press(admin_http, task, "start")
    report = finished_report(task)
    assert report.result == result, log_texts(report)
    assert report.end_reason == reason
    assert Report.objects.filter(task=task).count() == 1
    orphans = [int(t.split()[-1]) for t in log_texts(report) if t.startswith("orphan pid")]
    for pid in orphans:
        wait_for(lambda pid=pid: not is_sleep_300(pid), message="orphan %d to be killed" % pid)
    if orphans:
        assert "2 process(es) started by the command outlived it and were killed." in log_texts(report)
    # The spoolers survived and serve the next task.
    assert live_spooler_pids(server) == spoolers
    nxt = add_task(admin_http, commands, name + "-next", "tm_ok")
    press(admin_http, nxt, "start")
    assert finished_report(nxt).result == "OK"


def test_leaking_command_does_not_grow_the_spooler(uwsgi_node, commands):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    (spooler,) = live_spooler_pids(instance)
    # 20 tasks started together, 10 times over: 200 runs in one spooler process.
    tasks = make_tasks(commands, "leaky", 20, command="tm_leak")
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(arguments="--megabytes 2")
    peaks = {}
    leaky = Task.objects.filter(name__startswith="leaky-")
    for round_ in range(1, 11):
        before = dict(leaky.values_list("pk", "last_datetime"))
        bulk_action(client, "start_tasks", *tasks)  # returns once all 20 are SPOOLED
        wait_for(
            lambda: not leaky.exclude(status=Task.Status.IDLE).exists(),
            interval=0.02,
            message="round %d to end" % round_,
        )
        after = dict(leaky.values_list("pk", "last_datetime"))
        assert all(after[pk] != before[pk] for pk in after), "a task did not run in round %d" % round_
        peaks[round_ * 20] = vm_kib(spooler, "VmHWM")
    runs = Report.objects.filter(task__in=tasks)
    assert set(runs.values_list("result", flat=True)) == {"OK"}
    # Each run leaked into a fresh process: the leak never accumulated.
    assert all("leaked 2 MiB in this process" in log_texts(r) for r in runs[:20])
    assert live_spooler_pids(instance) == [spooler]
    # 180 runs x 2 MiB = 360 MiB had the command run in the spooler itself.
    assert peaks[200] - peaks[20] < 4 * 1024, peaks


# -- Deletion during a run ---------------------------------------------------------


def test_task_deleted_while_spooled_ends_quietly(uwsgi_node, commands):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    blocker, _running = start_running(client, commands, "blocker")
    victim = add_task(client, commands, "victim", "tm_ok")
    press(client, victim, "start")
    victim.refresh_from_db()
    assert victim.status == Task.Status.SPOOLED
    resp = client.post("/admin/taskmanager/task/%d/delete/" % victim.pk, {"post": "yes"})
    assert resp.status == 200
    assert not Task.objects.filter(pk=victim.pk).exists()
    press(client, blocker, "stop")
    finished_report(blocker)
    # Consumed: a file that is gone cannot be re-run (a retry loop keeps it).
    wait_for(lambda: spool_is_empty(instance.spool_dir), message="the spool entry to be consumed")
    assert instance.log().count("Task %d no longer exists" % victim.pk) == 1
    assert live_spooler_pids(instance) == instance.spooler_pids()


@pytest.mark.db_sensitive
def test_task_deleted_while_running_kills_the_command(uwsgi_node, commands):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    (spooler,) = live_spooler_pids(instance)
    task, report = start_running(client, commands, "doomed")
    resp = client.post("/admin/taskmanager/task/%d/delete/" % task.pk, {"post": "yes"})
    assert resp.status == 200
    assert not Report.objects.filter(pk=report.pk).exists()
    wait_for(lambda: gone(report.pid), message="the command to be killed")
    wait_for(lambda: spool_is_empty(instance.spool_dir), message="the spool entry to be consumed")
    assert "was deleted (the task was deleted?)" in instance.log()
    assert not LogLine.objects.filter(report_id=report.pk).exists()
    assert live_spooler_pids(instance) == [spooler]
    nxt = add_task(client, commands, "after-doom", "tm_ok")
    press(client, nxt, "start")
    assert finished_report(nxt).result == "OK"


def test_command_of_a_spooled_task_cannot_be_deleted(admin_http, commands):
    # So "the command was deleted while a run was spooled" cannot happen; a
    # deactivated command makes the run fail with a message (test_end_to_end).
    task = add_task(admin_http, commands, "uses-ok", "tm_sleep", "--seconds 120")
    press(admin_http, task, "start")
    resp = admin_http.post("/admin/taskmanager/command/%d/delete/" % commands["tm_sleep"].pk, {"post": "yes"})
    # The admin refuses (PROTECT) and names the task (tests/test_adversarial.py).
    assert "protected" in resp.text and "uses-ok" in resp.text
    assert Command.objects.filter(pk=commands["tm_sleep"].pk).exists()
    press(admin_http, task, "stop")  # cancels the queued run, or stops the run
    wait_for(lambda: Task.objects.get(pk=task.pk).status == Task.Status.IDLE, message="the task to be idle")


# -- Exactly one run ---------------------------------------------------------------


@pytest.mark.db_sensitive
def test_fifty_concurrent_starts_make_one_run(server, admin_http, commands):
    task = add_task(admin_http, commands, "crowd", "tm_sleep", "--seconds 120, --tick 0.2")
    barrier = threading.Barrier(50)
    answers = []

    def click(client):
        barrier.wait()
        answers.append(press(client, task, "start", status=None))

    # 50 browsers of one user: same session, each its own messages cookie.
    clients = []
    for _ in range(50):
        client = AdminClient(server.url)
        for cookie in admin_http.jar:
            client.jar.set_cookie(cookie)
        clients.append(client)
    threads = [threading.Thread(target=click, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status for a in answers] == [200] * 50
    started = [a for a in answers if "was started" in a.text]
    assert len(started) == 1
    assert all("already" in a.text for a in answers if a not in started)
    report = running_report(task)
    assert Report.objects.filter(task=task).count() == 1
    press(admin_http, task, "stop")
    assert finished_report(task).pk == report.pk
    assert Report.objects.filter(task=task).count() == 1


@pytest.mark.db_sensitive
def test_twenty_tasks_started_together_run_once_each(server, admin_http, commands):
    tasks = make_tasks(commands, "twenty", 20, command="tm_ok")
    bulk_action(admin_http, "start_tasks", *tasks)
    wait_for(
        lambda: (
            Report.objects.filter(task__in=tasks, finished_datetime__isnull=False).count() >= 20
            and not Task.objects.filter(pk__in=[t.pk for t in tasks])
            .exclude(status=Task.Status.IDLE)
            .exists()
        ),
        message="20 runs to end",
    )
    ids = {t.pk for t in tasks}
    wait_for(lambda: spool_is_empty(server.spool_dir, ids), message="every spool entry to be consumed")
    counts = {t.pk: Report.objects.filter(task=t).count() for t in tasks}
    assert set(counts.values()) == {1}, counts
    assert set(Report.objects.filter(task__in=tasks).values_list("result", flat=True)) == {"OK"}


@pytest.mark.db_sensitive
def test_thousand_quick_runs_all_have_reports(server, admin_http, commands):
    tasks = make_tasks(commands, "quick", 1000)
    bulk_action(admin_http, "start_tasks", *tasks)
    ids = [t.pk for t in tasks]
    wait_for(
        lambda: Report.objects.filter(task_id__in=ids, finished_datetime__isnull=False).count() >= 1000,
        timeout=300,
        interval=0.5,
        message="1,000 runs to end",
    )
    wait_for(lambda: spool_is_empty(server.spool_dir, set(ids)), message="every spool entry to be consumed")
    assert Report.objects.filter(task_id__in=ids).count() == 1000
    assert set(Report.objects.filter(task_id__in=ids).values_list("result", flat=True)) == {"OK"}
    assert not Task.objects.filter(pk__in=ids).exclude(status=Task.Status.IDLE).exists()
    assert "database is locked" not in server.log()


# -- Database connections ----------------------------------------------------------


def kill_other_connections() -> int:
    """Terminate every other connection to the test database; return how many."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]
        cursor.execute(
            "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for pid in ids:
            cursor.execute("KILL CONNECTION %d" % pid)
        return len(ids)


def _database_has_server() -> bool:
    from django.conf import settings

    return not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")


# SQLite has no server connection to kill: this test exists on PostgreSQL and
# MariaDB only (TM_TEST_DB, and the database-sensitive stages of .ci/run).
if _database_has_server():

    @pytest.mark.db_sensitive
    @pytest.mark.parametrize("max_age", [0, None], ids=["CONN_MAX_AGE=0", "CONN_MAX_AGE=None"])
    def test_killed_database_connections_do_not_break_runs(uwsgi_node, commands, max_age):
        _killed_database_connections_do_not_break_runs(uwsgi_node, commands, max_age)


def _killed_database_connections_do_not_break_runs(uwsgi_node, commands, max_age):
    # Persistent connections in the spooler are the hard case: a killed one is
    # reused by the next run. A spooler keeps its connection from one run to
    # the next also with Django's default CONN_MAX_AGE = 0 (runner/,
    # drop_broken_connections). The web node keeps Django's default (closed
    # after each request), so its requests are not the thing tested here.
    spooler_node = uwsgi_node(http=False, spooler_processes=1, settings={"CONN_MAX_AGE": max_age})
    web = uwsgi_node(spooler_processes=0, extra_args=["--spooler-external", str(spooler_node.spool_dir)])
    client = web.admin
    first = add_task(client, commands, "before-kill", "tm_ok")
    press(client, first, "start")
    assert finished_report(first).result == "OK"
    kill_other_connections()
    second = add_task(client, commands, "after-kill", "tm_ok")
    press(client, second, "start")
    assert finished_report(second).result == "OK"
    # And while a run writes its log.
    third = add_task(client, commands, "during-kill", "tm_sleep", "--seconds 3, --tick 0.1")
    press(client, third, "start")
    running_report(third)
    assert kill_other_connections() >= 1
    report = finished_report(third)
    assert report.result == "OK", (report.end_reason, log_texts(report)[-5:])
    assert "slept" in log_texts(report)


# -- The state table (docs/states.rst) ---------------------------------------------

STATE_TABLE = {
    # (status before, button): (message fragment, what follows)
    ("IDLE", "start"): ("was started", "a run, then IDLE"),
    ("IDLE", "stop"): ("is neither running nor scheduled", "IDLE"),
    ("IDLE", "run-now"): ("will run now", "a run, then IDLE"),
    ("SCHEDULED", "start"): ("is already scheduled: next run", "SCHEDULED"),
    ("SCHEDULED", "stop"): ("its pending run is cancelled", "IDLE"),
    ("SCHEDULED", "run-now"): ("will run now", "a run, then SCHEDULED"),
    ("SPOOLED", "start"): ("is already scheduled: next run", "SPOOLED"),
    ("SPOOLED", "stop"): ("its pending run is cancelled", "IDLE"),
    ("SPOOLED", "run-now"): ("will run now", "a run, then SPOOLED"),
    ("STARTED", "start"): ("is already running", "STARTED"),
    ("STARTED", "stop"): ("is being stopped", "the run stopped, then IDLE"),
    ("STARTED", "run-now"): ("is already running", "STARTED"),
}


def task_in_status(client, commands, status, name):
    """Create a task through the admin and bring it to ``status`` through its buttons."""
    if status == "IDLE":
        return add_task(client, commands, name, "tm_ok")
    if status == "SCHEDULED":
        tomorrow = timezone.localtime() + timedelta(days=1)
        task = add_task(
            client,
            commands,
            name,
            "tm_ok",
            scheduling_0=tomorrow.strftime("%Y-%m-%d"),
            scheduling_1=tomorrow.strftime("%H:%M:%S"),
        )
        press(client, task, "start")
    elif status == "SPOOLED":
        # A repeating task between two runs.
        task = add_task(client, commands, name, "tm_ok", **periodic_fields(60))
        press(client, task, "start")
        finished_report(task)
    else:
        task, _running = start_running(client, commands, name)
    wait_for(lambda: Task.objects.get(pk=task.pk).status == status, message="%s to be %s" % (name, status))
    return Task.objects.get(pk=task.pk)


@pytest.mark.db_sensitive
@pytest.mark.parametrize("status, button", list(STATE_TABLE), ids=["-".join(k) for k in STATE_TABLE])
def test_state_table(server, admin_http, commands, status, button):
    message, after = STATE_TABLE[status, button]
    task = task_in_status(admin_http, commands, status, "state-%s-%s" % (status, button))
    reports = Report.objects.filter(task=task).count()
    resp = press(admin_http, task, button)
    assert message in resp.text
    if after.startswith("a run"):
        wait_for(
            lambda: Report.objects.filter(task=task, finished_datetime__isnull=False).count() > reports,
            message="a new run of %s" % task.name,
        )
        wait_for(lambda: Task.objects.get(pk=task.pk).status != "STARTED", message="the run's end")
        expected = after.rsplit(" ", 1)[-1]
    elif after.startswith("the run stopped"):
        assert finished_report(task).end_reason == "stopped by user admin"
        expected = "IDLE"
    else:
        expected = after
    current = Task.objects.get(pk=task.pk)
    assert current.status == expected
    assert Report.objects.filter(task=task).count() == reports + after.startswith("a run")
    if expected in ("SCHEDULED", "SPOOLED") and status == expected:
        assert current.next_datetime == task.next_datetime and current.run_token == task.run_token
    if current.status == "STARTED":
        press(admin_http, task, "stop")
        finished_report(task)

"""Several machines, one task manager (issue 15): the database is the queue of record.

Nodes are uWSGI instances on the test database, each with a host name of its
own (``TM_TEST_HOSTNAME``, read by ``tests/settings.py``): to each other they
are separate machines with separate spool directories and no shared file
system. Second-scale settings: a pass every second, a grace of 2 s.

* A node dies (SIGKILL of its whole process group) with scheduled work:
  another node takes each pending row once it is overdue by the grace, runs
  each slot once, and the dead node's files run nothing when it comes back.
* A web-only node (no spooler, no spooler-external) accepts Start and Run
  now; a spooler node takes the hint-less rows at its next pass.
* A task pinned to a queue is never run by a node that does not serve it.

On SQLite the nodes share one file on this machine, which is all these tests
need (the database's clock is each process's, the same machine's clock).
"""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from taskmanager import dbclock, spoolfiles
from taskmanager.models import Report, Task

from .support.admin import TASK_URL, press, task_form
from .support.objects import make_task
from .support.spool import spool_paths
from .support.waits import finished_report, finished_reports, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_sensitive]

SETTINGS = {
    "TASKMANAGER_RECOVERY_SECONDS": 1,
    "TASKMANAGER_HEARTBEAT_SECONDS": 0.5,
    "TASKMANAGER_HEARTBEAT_TIMEOUT": 5,
    "TASKMANAGER_TAKEOVER_GRACE": 2,
    "TASKMANAGER_NODE_TIMEOUT": 3,
    "TASKMANAGER_QUEUES": ["default", "gpu", "web-only-test"],
}
HOST_A, HOST_B, HOST_WEB = "node-a.invalid", "node-b.invalid", "web-only.invalid"


def node(uwsgi_node, host, serve=None, **options):
    """A uWSGI node standing for machine ``host`` (serving the queues ``serve``, default: "default")."""
    settings = dict(SETTINGS)
    if serve is not None:
        settings["TASKMANAGER_SERVE_QUEUES"] = serve
    return uwsgi_node(settings=settings, env={"TM_TEST_HOSTNAME": host}, **options)


def node_id(server, host) -> str:
    return "%s:%s" % (host, os.path.abspath(server.spool_dir))


def kill(server) -> None:
    """SIGKILL the node's whole process group (master, workers, spoolers, commands): a machine lost."""
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    server.proc = None


def test_dead_node_waiting_and_repeating_tasks_run_elsewhere_once(uwsgi_node, commands):
    a = node(uwsgi_node, HOST_A)
    b = node(uwsgi_node, HOST_B)
    due = (dbclock.now() + timedelta(seconds=6)).replace(microsecond=0)
    repeating = [
        make_task(
            commands, "every-minute-%d" % i, scheduling=due, repetition_period="minute", repetition_rate=1
        )
        for i in range(3)
    ]
    once = make_task(commands, "once", scheduling=due)
    tasks = [*repeating, once]
    for task in tasks:
        assert "is scheduled" in press(a.admin, task, "start").text
    a_id = node_id(a, HOST_A)
    assert set(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("spooler_node", flat=True)) == {
        a_id
    }

    kill(a)
    killed = time.monotonic()
    runs = {task.pk: finished_report(task, timeout=40) for task in tasks}
    print(
        "\nfailover: last run ended %.1f s after the kill (slot due %.1f s after it)"
        % (time.monotonic() - killed, (due - dbclock.now()).total_seconds() + time.monotonic() - killed)
    )
    for task in tasks:
        report = runs[task.pk]
        assert report.host == HOST_B, (task.name, report.host)
        assert report.result == "OK"
        assert report.invocation_datetime >= due
    b_id = node_id(b, HOST_B)
    for task in repeating:
        task.refresh_from_db()
        # The chain goes on on B, at the next slot of the grid: nothing replayed, nothing doubled.
        assert task.status in Task.PENDING
        assert task.spooler_node == b_id
        assert task.next_datetime == due + timedelta(minutes=1)
    once.refresh_from_db()
    assert once.status == Task.Status.IDLE
    assert "taken over from %s" % a_id in b.log()
    # The admin names the silent node, and says its waiting work has gone.
    page = b.admin.get("/admin/taskmanager/task/")
    assert page.status == 200
    banner = page.text.split("tm-silent-nodes-banner", 1)[1].split("</ul>", 1)[0]
    assert a_id in banner and "No waiting task is recorded on it any more." in banner, banner
    # The task's page shows the node it moved to.
    assert b_id in b.admin.get("/admin/taskmanager/task/%d/change/" % repeating[0].pk).text

    # A comes back with its spool directory: its files carry superseded tokens and run nothing.
    back = node(uwsgi_node, HOST_A, spool_dir=a.spool_dir, http=False)
    wait_for(
        lambda: not [p for p in spool_paths(back.spool_dir) if p.stat().st_mtime <= time.time()],
        timeout=30,
        message="node A's stale files consumed",
    )
    for task in tasks:
        assert Report.objects.filter(task=task).count() == 1, task.name


def test_a_busy_node_s_overdue_run_is_done_elsewhere_once(uwsgi_node, commands):
    # Node A has one spooler process, kept busy by a long run: what waits behind it is late.
    a = node(uwsgi_node, HOST_A, spooler_processes=1)
    b = node(uwsgi_node, HOST_B)
    long_task = make_task(commands, "long-on-a", "tm_sleep", arguments="--seconds 120, --tick 0.2")
    press(a.admin, long_task, "start")
    wait_for(
        lambda: Report.objects.filter(task=long_task, host=HOST_A, lines__gte=1).exists(),
        message="the long run on A",
    )
    waiting = make_task(commands, "behind-the-long-run")
    assert "was started" in press(a.admin, waiting, "start").text
    assert Task.objects.get(pk=waiting.pk).spooler_node == node_id(a, HOST_A)
    report = finished_report(waiting, timeout=30)
    assert report.host == HOST_B
    assert "taken over from %s" % node_id(a, HOST_A) in b.log()
    # A's spooler is free again: its file of the run taken over runs nothing.
    press(a.admin, long_task, "stop")
    finished_report(long_task)
    wait_for(
        lambda: not [p for p in spool_paths(a.spool_dir) if p.stat().st_mtime <= time.time()],
        message="node A's stale file consumed",
    )
    assert Report.objects.filter(task=waiting).count() == 1


def test_start_and_run_now_through_a_web_only_node_reach_a_spooler_node(uwsgi_node, commands):
    # The tasks are of a queue only B serves: a spooler node of the suite
    # that shares the test database cannot take them in B's place.
    web = node(uwsgi_node, HOST_WEB, spooler_processes=0)
    node(uwsgi_node, HOST_B, serve=["web-only-test"])
    started = make_task(commands, "web-start", queue="web-only-test")
    text = press(web.admin, started, "start").text
    assert "a spooler node will take it" in text, text
    report = finished_report(started, timeout=30)
    assert report.host == HOST_B
    assert report.result == "OK"
    # A web-only node is a configuration, not a mistake: no E011 at its start.
    assert "taskmanager.E011" not in web.log()

    now = make_task(commands, "web-run-now", queue="web-only-test")
    assert "a spooler node will take it" in press(web.admin, now, "run-now").text
    report = finished_report(now, timeout=30)
    assert report.host == HOST_B and report.trigger == Report.Trigger.RUN_NOW
    assert Task.objects.get(pk=now.pk).status == Task.Status.IDLE


def test_a_queue_pinned_task_runs_only_on_a_node_serving_its_queue(uwsgi_node, commands):
    a = node(uwsgi_node, HOST_A, serve=["default"])
    task = make_task(commands, "on-gpu", queue="gpu")
    assert "a spooler node will take it" in press(a.admin, task, "start").text
    task.refresh_from_db()
    assert task.status == Task.Status.SPOOLED and task.spooler_node == ""
    # An entry of the current token in A's directory anyway (a file copied, an old release):
    # A's claim refuses it and leaves the row pending.
    path = spoolfiles.write(a.spool_dir, spoolfiles.make_entry(task.pk, task.run_token, "start"))
    wait_for(lambda: not os.path.exists(path), message="A consuming the entry")
    wait_for(lambda: "does not serve queue" in a.log(), message="A's refusal in its log")
    assert not Report.objects.filter(task=task).exists()
    task.refresh_from_db()
    assert task.status == Task.Status.SPOOLED

    gpu = node(uwsgi_node, HOST_B, serve=["gpu"])
    report = finished_report(task, timeout=30)
    assert report.host == HOST_B
    # A default-queue task started through the gpu-only node runs on a node serving "default":
    # A, or the session's shared server (another live node on this database, named for this
    # machine) when an earlier test of the session started it; never on the gpu node.
    plain = make_task(commands, "on-default")
    assert "a spooler node will take it" in press(gpu.admin, plain, "start").text
    assert finished_report(plain, timeout=30).host != HOST_B
    assert len(finished_reports(task)) == 1


def test_takeover_pass_coalesces_missed_slots_and_respects_queues(commands):
    from taskmanager.recovery import take_over

    anchor = (timezone.now() - timedelta(minutes=10)).replace(microsecond=0)
    late = timezone.now() - timedelta(minutes=3, seconds=30)
    dead = make_task(commands, "dead-node", scheduling=anchor, repetition_period="minute", repetition_rate=1)
    pinned = make_task(commands, "dead-node-gpu", queue="gpu")
    fresh = make_task(commands, "alive-node")
    for task, when in ((dead, late), (pinned, late), (fresh, timezone.now())):
        Task.objects.filter(pk=task.pk).update(
            status=Task.Status.SCHEDULED,
            run_token="old%d" % task.pk,
            next_datetime=when,
            spooler_node="gone:/spool",
            spooler_id="/spool/uwsgi_spoolfile_x",
        )
    spooled = []

    def spool(task_id, token, trigger, at):
        spooled.append((task_id, token, trigger, at))
        return "/here/uwsgi_spoolfile_%d" % task_id

    assert take_over(spool, "here:/here") == 1
    # One entry for the missed slots, at once (its stored next run, in the past): the claim
    # then runs one run and goes on at the next slot of the grid (the coalescing rule).
    [(task_id, token, trigger, at)] = spooled
    dead.refresh_from_db()
    assert task_id == dead.pk and token == dead.run_token != "old%d" % dead.pk
    assert trigger == Report.Trigger.RECOVERY and at is None and dead.next_datetime == late
    assert dead.spooler_node == "here:/here" and dead.spooler_id == "/here/uwsgi_spoolfile_%d" % dead.pk
    # Not the gpu one (not served here), not the one within the grace.
    assert Task.objects.get(pk=pinned.pk).spooler_node == "gone:/spool"
    assert Task.objects.get(pk=fresh.pk).spooler_node == "gone:/spool"
    assert take_over(spool, "here:/here") == 0


def test_takeover_pass_takes_a_late_run_now_of_another_node_and_leaves_a_fresh_one(commands):
    from taskmanager.recovery import take_over

    late = make_task(commands, "run-now-late")
    fresh = make_task(commands, "run-now-fresh")
    for task, age in ((late, 300), (fresh, 0)):
        Task.objects.filter(pk=task.pk).update(
            run_now_token="rn%d" % task.pk,
            run_now_at=timezone.now() - timedelta(seconds=age),
            spooler_node="gone:/spool",
        )
    spooled = []
    assert take_over(lambda *entry: spooled.append(entry) or "", "here:/here") == 1
    late.refresh_from_db()
    assert spooled == [(late.pk, late.run_now_token, Report.Trigger.RUN_NOW, None)]
    assert late.run_now_token != "rn%d" % late.pk and late.spooler_node == "here:/here"
    assert late.status == Task.Status.IDLE
    assert Task.objects.get(pk=fresh.pk).run_now_token == "rn%d" % fresh.pk


def test_the_task_form_accepts_the_known_queues_only(client, superuser, commands, settings):
    settings.TASKMANAGER_QUEUES = ["default", "gpu"]
    client.force_login(superuser)
    resp = client.post(TASK_URL + "add/", task_form(commands, "queue-cpu", queue="cpu"))
    assert "Unknown queue cpu; the queues are: default, gpu." in resp.content.decode()
    assert not Task.objects.filter(name="queue-cpu").exists()
    client.post(TASK_URL + "add/", task_form(commands, "queue-gpu", queue="gpu"))
    client.post(TASK_URL + "add/", task_form(commands, "queue-default", queue="default"))
    assert Task.objects.get(name="queue-gpu").queue == "gpu"
    # The default queue is stored blank: a node serving "default" serves it.
    assert Task.objects.get(name="queue-default").queue == ""


def test_queue_settings_are_checked(settings):
    from taskmanager import checks

    settings.TASKMANAGER_QUEUES = ["default", "gpu"]
    settings.TASKMANAGER_SERVE_QUEUES = ["default", "gpux"]
    settings.TASKMANAGER_TAKEOVER_GRACE = -1
    settings.TASKMANAGER_WEB_ONLY = "yes"
    found = {(m.id, m.obj) for m in checks.check_settings()}
    assert ("taskmanager.W018", "TASKMANAGER_SERVE_QUEUES") in found
    assert ("taskmanager.E001", "TASKMANAGER_TAKEOVER_GRACE") in found
    assert ("taskmanager.E001", "TASKMANAGER_WEB_ONLY") in found
    settings.TASKMANAGER_SERVE_QUEUES = ["default", ""]
    assert ("taskmanager.E001", "TASKMANAGER_SERVE_QUEUES") in {
        (m.id, m.obj) for m in checks.check_settings()
    }


def test_web_only_start_and_edit_of_a_running_task_leave_the_row_to_spooler_nodes(commands, settings):
    from taskmanager import actions

    settings.TASKMANAGER_WEB_ONLY = True
    later = timezone.now() + timedelta(hours=1)
    task = make_task(
        commands, "web-only-in-process", scheduling=later, repetition_period="hour", repetition_rate=1
    )
    outcome = actions.start(task)
    assert outcome.ok and "a spooler node will take it" in outcome.message, outcome.message
    task.refresh_from_db()
    assert task.status == Task.Status.SCHEDULED and task.spooler_node == "" and task.run_token
    # Running on a spooler node, edited here: the next run is recorded with no node, no entry.
    Task.objects.filter(pk=task.pk).update(status=Task.Status.STARTED, run_token="old", spooler_node="n:/d")
    task.refresh_from_db()
    outcome = actions.reschedule(task)
    assert outcome.ok, outcome.message
    task.refresh_from_db()
    assert task.status == Task.Status.STARTED and task.run_token not in ("", "old")
    assert task.spooler_node == "" and task.spooler_id == ""

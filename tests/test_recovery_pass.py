"""The periodic recovery pass (issue 13, items 2 and 6), through real uWSGI nodes.

Item 1: a "run now" token whose spool entry is gone is spooled again by the
periodic pass, at its first pass once the token is older than the margin
for an entry being written (one pass called directly counts the passes),
and by the pass at a spooler's start (a spool directory emptied while uWSGI
was down, as a reboot empties a tmpfs). Item 2: a next run that could not be spooled, or an entry lost from disk, is
spooled again by the periodic pass within one recovery period, and the
recovered run says so in its log. Item 6: Stop and edits delete the
superseded future entry on this node, and the periodic pass sweeps the
others, a bounded batch (``TASKMANAGER_SPOOL_SWEEP_BATCH``) per pass.
"""

import math
import os
import re
import shutil
from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from taskmanager import dbclock, spoolfiles
from taskmanager.models import Report, Task
from taskmanager.recovery import runnow

from .support.admin import add_task, edit_task, press, start_running
from .support.objects import log_texts
from .support.spool import entries_of, file_writer, make_due, spool_entries
from .support.waits import finished_report, finished_reports, recovery_ticks, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PERIODIC = {"repetition_period": "minute", "repetition_rate": "1"}


def current_entry(node, task):
    """The path of the task's entry with its current token in the node's spool dir, or None."""
    task.refresh_from_db()
    for path, entry in spool_entries(node.spool_dir).items():
        if entry["task"] == str(task.pk) and entry["token"] == task.run_token and task.run_token:
            return path
    return None


@pytest.mark.db_sensitive
def test_next_run_not_spooled_at_claim_is_respooled_by_the_periodic_pass(uwsgi_node, commands, tmp_path):
    """The spool directory is "full" when the claim spools the next slot (the backend's spool()
    raises, as uwsgi.spool() does); once space is back, the periodic pass spools it again."""
    full = tmp_path / "spool-full"
    node = uwsgi_node(
        settings={
            "TASKMANAGER_RECOVERY_SECONDS": 1,
            "TASKMANAGER_BACKEND": "tests.testapp.backends.FullSpoolBackend",
            "TM_TEST_SPOOL_FULL": str(full),
        }
    )
    task = add_task(node.admin, commands, "respool-full", "tm_ok", **PERIODIC)
    Task.objects.filter(pk=task.pk).update(scheduling=timezone.now() + timedelta(hours=1))
    assert "is scheduled" in press(node.admin, task, "start").text
    full.touch()  # the disk fills up before the slot comes
    make_due(task)
    report = finished_report(task)
    assert any("The next run could not be spooled" in text for text in log_texts(report))
    task.refresh_from_db()
    assert task.status in Task.PENDING and task.run_token and task.next_datetime
    assert current_entry(node, task) is None

    full.unlink()  # space is back
    path = wait_for(lambda: current_entry(node, task), message="the next run respooled")
    # The pass records the entry's path right after writing the file.
    wait_for(lambda: Task.objects.get(pk=task.pk).spooler_id == path, message="the entry's path recorded")
    task.refresh_from_db()
    entry = spoolfiles.read(path)
    assert entry["trigger"] == Report.Trigger.RECOVERY
    assert int(entry["at"]) == math.ceil(task.next_datetime.timestamp())
    assert "respooled for" in node.log()


@pytest.mark.db_sensitive
def test_lost_entry_of_a_scheduled_periodic_task_is_respooled_and_its_slot_runs(uwsgi_node, commands):
    node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1}, spooler_processes=1)
    task = add_task(node.admin, commands, "respool-lost", "tm_ok", **PERIODIC)
    slot = timezone.now().replace(microsecond=0) + timedelta(seconds=8)
    Task.objects.filter(pk=task.pk).update(scheduling=slot)
    press(node.admin, task, "start")
    lost = current_entry(node, task)
    assert lost
    os.unlink(lost)  # the entry is lost (its future date: no spooler holds it)

    # Respooled by the first whole recovery pass after the loss (a pass
    # counted by its heartbeat; one spooler process: the passes do not overlap).
    recovery_ticks(node, 2)
    assert current_entry(node, task) or Report.objects.filter(task=task).exists(), "not respooled"
    report = finished_report(task, timeout=30)
    assert report.trigger == Report.Trigger.RECOVERY
    assert report.invocation_datetime >= slot
    assert "This run's spool entry had been lost; the recovery spooled it again." in log_texts(report)
    task.refresh_from_db()
    assert task.status in Task.PENDING and task.next_datetime == slot + timedelta(minutes=1)


def far_task(node, commands, name):
    task = add_task(node.admin, commands, name, "tm_ok", scheduling_0="2030-01-01", scheduling_1="03:00:00")
    assert "is scheduled" in press(node.admin, task, "start").text
    path = current_entry(node, task)
    assert path
    return task, path


def test_stop_deletes_the_future_entry_on_this_node(uwsgi_node, commands):
    node = uwsgi_node()
    task, path = far_task(node, commands, "far-stop")
    assert "was stopped" in press(node.admin, task, "stop").text
    assert not os.path.exists(path)
    # Start and Stop again: nothing piles up.
    task, path = task, (press(node.admin, task, "start") and current_entry(node, task))
    press(node.admin, task, "stop")
    assert not [e for e in spool_entries(node.spool_dir).values() if e["task"] == str(task.pk)]


def test_edit_that_reschedules_deletes_the_superseded_entry(uwsgi_node, commands):
    node = uwsgi_node()
    task, path = far_task(node, commands, "far-edit")
    old_token = task.run_token
    edit_task(node.admin, task, scheduling_0="2031-01-01", scheduling_1="03:00:00")
    task.refresh_from_db()
    assert task.run_token != old_token and task.status == Task.Status.SCHEDULED
    assert not os.path.exists(path)
    assert len(entries_of(node.spool_dir, task)) == 1
    assert [e["task"] for e in spool_entries(node.spool_dir).values()] == [str(task.pk)]


def test_periodic_pass_sweeps_superseded_entries_in_bounded_batches(uwsgi_node, commands):
    node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1, "TASKMANAGER_SPOOL_SWEEP_BATCH": 3})
    task, kept = far_task(node, commands, "far-sweep")
    far = timezone.now() + timedelta(days=365)
    stale = [
        spoolfiles.write(node.spool_dir, spoolfiles.make_entry(task.pk, "stale%02d" % n, "start", far), far)
        for n in range(7)
    ]
    # A project's own @spool entry and an entry due now are not the sweep's.
    foreign = spoolfiles.write(node.spool_dir, {b"ud_spool_func": b"other", b"task": b"1"}, far)

    wait_for(lambda: not any(os.path.exists(p) for p in stale), message="the stale entries swept")
    assert os.path.exists(kept) and os.path.exists(foreign)

    def counts():
        return [int(n) for n in re.findall(r"sweep_superseded handled (\d+)", node.log())]

    # A pass logs its count after it deleted the files: wait for the last line.
    wait_for(lambda: sum(counts()) >= 7, message="the sweep's log lines")
    assert sum(counts()) == 7 and max(counts()) <= 3 and len(counts()) >= 3
    os.unlink(foreign)


def run_now_entries(node, task):
    """The paths of the node's spool files carrying the task's current "run now" token."""
    task.refresh_from_db()
    return [
        path
        for path, entry in spool_entries(node.spool_dir).items()
        if entry["task"] == str(task.pk) and entry["token"] == task.run_now_token and task.run_now_token
    ]


@pytest.mark.db_sensitive
def test_run_now_whose_entry_was_lost_is_respooled_by_the_periodic_pass(uwsgi_node, commands):
    # Before: the token stayed set with no entry behind it, and every later
    # Run now answered "already queued" until someone pressed Stop.
    node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1}, spooler_processes=1)
    blocker, _report = start_running(node.admin, commands, "runnow-blocker")
    task = add_task(node.admin, commands, "runnow-lost", "tm_ok")
    assert "will run now" in press(node.admin, task, "run-now").text
    lost = wait_for(lambda: run_now_entries(node, task), message="the run-now entry")
    assert len(lost) == 1
    os.unlink(lost[0])  # the only spooler is busy: nobody holds the file
    assert "already queued" in press(node.admin, task, "run-now").text
    press(node.admin, blocker, "stop")

    report = finished_report(task)
    assert report.trigger == Report.Trigger.RUN_NOW and report.result == "OK"
    wait_for(
        lambda: Task.objects.filter(pk=task.pk, status="IDLE", run_now_token="").exists(),
        message="the run-now token cleared",
    )
    assert "had no spool entry for its run now; respooled" in node.log()
    assert "will run now" in press(node.admin, task, "run-now").text
    assert len(finished_reports(task, count=2)) == 2


@pytest.mark.db_sensitive
def test_a_run_now_a_restart_lost_is_respooled_when_the_spooler_starts(uwsgi_node, commands):
    """A spool directory on a tmpfs is emptied by a reboot (docs/deploy.rst): a queued Run now in it
    runs when the spoolers start again, as the Scheduled and Spooled tasks do.

    Before: only the periodic pass respooled it, a recovery period later, and
    never with ``TASKMANAGER_RECOVERY_SECONDS = 0`` ("already queued" for ever).
    """
    settings = {"TASKMANAGER_RECOVERY_SECONDS": 0}
    node = uwsgi_node(settings=settings, spooler_processes=1)
    start_running(node.admin, commands, "restart-blocker")  # keeps the Run now's entry waiting
    task = add_task(node.admin, commands, "restart-run-now", "tm_ok")
    assert "will run now" in press(node.admin, task, "run-now").text
    wait_for(lambda: run_now_entries(node, task), message="the run-now entry")
    spool_dir = node.spool_dir
    node.stop()
    shutil.rmtree(spool_dir)  # the whole directory, as a reboot leaves a tmpfs
    pressed_long_ago(task)

    node = uwsgi_node(settings=settings, spooler_processes=1, spool_dir=spool_dir)
    report = finished_report(task)
    assert report.trigger == Report.Trigger.RUN_NOW and report.result == "OK"
    assert "had no spool entry for its run now; respooled" in node.log()
    wait_for(
        lambda: Task.objects.filter(pk=task.pk, status="IDLE", run_now_token="").exists(),
        message="the run-now token cleared",
    )
    wait_for(lambda: not run_now_entries(node, task), message="no entry left")
    assert Report.objects.filter(task=task, trigger=Report.Trigger.RUN_NOW).count() == 1


#: Longer ago than an entry may still be on its way to the spool directory.
LONG_AGO = runnow.WRITE_MARGIN + timedelta(seconds=1)


def waiting_since(task, ago):
    """Date the task's Run now (``run_now_at``) ``ago`` back, on the database's clock."""
    Task.objects.filter(pk=task.pk).update(run_now_at=dbclock.DbNow() - ago)


def pressed_long_ago(task):
    """Date the task's Run now back past the margin for an entry on its way (the press was just now)."""
    waiting_since(task, LONG_AGO)


@pytest.mark.db_sensitive
def test_a_run_now_deferred_behind_a_run_a_restart_cut_runs_when_the_spooler_starts(uwsgi_node, commands):
    """A Run now pressed while its task runs is deferred behind the run (its entry consumed, the
    token kept: the run's end spools it again). uWSGI stopped mid-run: the spooler's start closes
    the run as interrupted and runs the Run now, also with no periodic pass.

    Before: closing the run restarted the Run now's wait as a run's end does (``run_now_at``), for
    an entry that no end would write; the start pass took it for one on its way and left it.
    """
    settings = {"TASKMANAGER_RECOVERY_SECONDS": 0}
    node = uwsgi_node(settings=settings, spooler_processes=1)
    task, cut = start_running(node.admin, commands, "deferred-run-now", arguments="--seconds 30, --tick 0.2")
    # The row a deferral leaves (runner/claim.py: a Run now whose entry a spooler
    # claimed while the task ran): the token kept, no entry. Written here: the
    # deferral itself needs a Run now pressed on a pending task whose run
    # another spooler starts first, which no test can order.
    Task.objects.filter(pk=task.pk).update(run_now_token="deferred-token")
    spool_dir = node.spool_dir
    node.stop()
    pressed_long_ago(task)

    node = uwsgi_node(settings=settings, spool_dir=spool_dir)
    cut = finished_report(task)  # the run uWSGI's stop cut, closed by the start's recovery
    assert cut.trigger == Report.Trigger.START and cut.result == "FAILED"
    wait_for(
        lambda: Report.objects.filter(task=task, trigger=Report.Trigger.RUN_NOW).exists(),
        message="the Run now's run",
    )
    assert "had no spool entry for its run now; respooled" in node.log()


def test_a_lost_run_now_is_respooled_at_the_first_pass_past_the_write_margin(commands, tmp_path):
    """So "already queued" lasts one recovery period, not two (issue 13, item 1, last sentence).

    Before: a token with no entry was respooled only by the second pass of
    the same process that saw it so. The passes are called here one by one.
    """
    spool_dir = str(tmp_path)
    spooled = []

    def spool(task_id, token, trigger, at):
        spooled.append((task_id, token, trigger, at))
        return spoolfiles.write(spool_dir, spoolfiles.make_entry(task_id, token, trigger, at), at)

    def one_pass():
        return runnow.respool_run_now(spool_dir, spool, "this-host:%s" % spool_dir)

    old = LONG_AGO
    # A queued Run now older than the margin whose entry is gone: the first
    # pass that looks respools it.
    task = Task.objects.create(name="lost-run-now", command=commands["tm_ok"], run_now_token="tok1")
    waiting_since(task, old)
    assert one_pass() == 1
    assert spooled == [(task.pk, "tok1", Report.Trigger.RUN_NOW, None)]
    # Its entry is on disk now: the next pass leaves it.
    assert one_pass() == 0 and len(spooled) == 1

    # Run now's UPDATE, its entry not written yet: too young to be lost,
    # until it is older than the margin.
    young = Task.objects.create(name="young-run-now", command=commands["tm_ok"])
    Task.objects.filter(pk=young.pk).update(run_now_token="tok0", run_now_at=Now())
    assert one_pass() == 0 and len(spooled) == 1
    waiting_since(young, old)
    assert one_pass() == 1 and spooled[-1][:2] == (young.pk, "tok0")

    # A token from before run_now_at was recorded counts as old.
    other = Task.objects.create(name="lost-run-now-old", command=commands["tm_ok"], run_now_token="tok2")
    assert one_pass() == 1 and spooled[-1][:2] == (other.pk, "tok2")

    # Deferred behind a run (STARTED): left alone, however old; the run's end
    # restarts the wait (respool_deferred writes the entry right after it).
    running = Task.objects.create(
        name="deferred-run-now", command=commands["tm_ok"], status=Task.Status.STARTED, run_now_token="tok3"
    )
    waiting_since(running, old)
    assert one_pass() == 0
    Task.objects.filter(pk=running.pk).end_run()
    assert Task.objects.get(pk=running.pk).status == Task.Status.IDLE
    assert one_pass() == 0
    waiting_since(running, old)
    assert one_pass() == 1 and spooled[-1][:2] == (running.pk, "tok3")
    assert len(spooled) == 4


def test_a_started_entry_due_now_is_found_by_its_token(commands, tmp_path):
    """Start records no spool file for an entry due at once (issue 17: one durable commit).

    Recovery, at a spooler's start or with ``respool_tasks``, finds it by its
    token among the files due now, and respools only a task with none.
    """
    from taskmanager import recovery

    spool_dir = str(tmp_path)
    node = spoolfiles.node_id(spool_dir)
    spool = file_writer(spool_dir)
    waiting = Task.objects.create(
        name="waiting", command=commands["tm_ok"], status="SPOOLED", run_token="tok1", spooler_node=node
    )
    spool(waiting.pk, "tok1", Report.Trigger.START, None)
    lost = Task.objects.create(
        name="lost", command=commands["tm_ok"], status="SPOOLED", run_token="tok2", spooler_node=node
    )
    spool(lost.pk, "tok-old", Report.Trigger.START, None)  # another token's file: not its entry
    assert [item.task_id for item in recovery.respool(spool_dir, spool)] == [lost.pk]
    assert Task.objects.get(pk=waiting.pk).run_token == "tok1"
    lost.refresh_from_db()
    assert lost.run_token != "tok2" and spoolfiles.is_live(lost.spooler_id, spool_dir)


def test_an_entry_handed_over_while_the_pass_looks_is_not_respooled(commands, tmp_path, monkeypatch):
    """Start commits the row, then writes its spool entry: a pass at a spooler's start that read the
    row in between finds no entry at its first look. It looks again (up to a second) before it
    respools: else the Start's own entry runs nothing (stale) and its run says "recovery"
    (seen in ``test_atomic_requests.py``, a spooler starting while the list's Start action handed over)."""
    from taskmanager import recovery

    spool_dir = str(tmp_path)
    node = spoolfiles.node_id(spool_dir)
    spool = file_writer(spool_dir)
    handed = Task.objects.create(
        name="handed over", command=commands["tm_ok"], status="SPOOLED", run_token="tok3", spooler_node=node
    )
    looks = []
    first_look = spoolfiles.due_tokens

    def look(directory, not_after):
        tokens = first_look(directory, not_after)
        if not looks:  # the Start's write on commit lands right after the pass's first look
            spool(handed.pk, "tok3", Report.Trigger.START, None)
        looks.append(tokens)
        return tokens

    monkeypatch.setattr(spoolfiles, "due_tokens", look)
    assert recovery.respool(spool_dir, spool) == []
    assert len(looks) >= 2
    assert Task.objects.get(pk=handed.pk).run_token == "tok3"
    assert [entry["trigger"] for _path, entry in spoolfiles.due_entries(spool_dir, math.inf)] == ["start"]

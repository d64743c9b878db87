"""Recovery after crashes and restarts, run when a spooler process starts.

Two independent parts, both safe to run twice or from two spooler processes
at once (every change is a conditional UPDATE):

* ``recover_interrupted_runs()``: reports left running by a supervisor that is
  gone (evidence: its pid and start time on this host, or a stale heartbeat)
  are closed as "interrupted"; leftover process groups are killed.
* ``respool_missing()``: tasks SCHEDULED/SPOOLED on this node whose spool entry
  is gone (spool directory emptied, reload) are spooled again for their next
  correct slot.
"""

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from . import schedule, spoolfiles
from .models import Report, Task, new_token

logger = logging.getLogger("taskmanager.recovery")


def recover_interrupted_runs(supervising: Callable[[], int | None] | None = None) -> int:
    """Close the runs whose supervisor is gone; return how many runs and tasks were fixed.

    A running report is declared interrupted only with evidence that its
    supervisor is gone, never because its spool file was seen again:

    * on this host, its supervisor pid is not alive with the recorded start
      time (so a reused pid does not count as alive), or the supervisor is
      this very process while it supervises another run or none;
    * on another host (or without a recorded start time), its heartbeat is
      older than ``TASKMANAGER_HEARTBEAT_TIMEOUT`` seconds.

    On this host the run's leftovers are killed first (see
    :func:`kill_leftovers`). The report then gets result FAILED, end reason
    "interrupted" and a log line saying why; the task leaves STARTED as at the
    end of any run: IDLE, or SPOOLED when its periodic chain goes on (the next
    run was spooled when this one was claimed). Tasks STARTED without any
    running report (their report was deleted) are released too. Every change
    is a conditional UPDATE: two processes recovering at once close each run
    once. The spool file of the interrupted run is never run again: its token
    was replaced when the run was claimed.

    ``supervising`` returns the pk of the report this process supervises now
    (``taskmanager.runner.current_report_id`` in a spooler); None: nothing.
    """
    from datetime import timedelta

    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from .conf import app_settings
    from .models import Report, Task

    now = timezone.now()
    host = socket.gethostname()
    stale_before = now - timedelta(seconds=app_settings.HEARTBEAT_TIMEOUT)
    fixed = 0
    for report in Report.objects.running().order_by("pk"):
        why = interruption_evidence(report, host, stale_before, supervising)
        if why is None:
            continue
        if report.host == host:
            kill_leftovers(report)
        fixed += close_interrupted(report, why, now)
    running = Report.objects.running().filter(task=OuterRef("pk"))
    released = Task.objects.filter(status=Task.Status.STARTED).exclude(Exists(running))
    count = released.end_run()
    if count:
        logger.warning("taskmanager recovery: %d task(s) were STARTED without a running report.", count)
    return fixed + count


def interruption_evidence(
    report, host: str, stale_before, supervising: Callable[[], int | None] | None = None
) -> str | None:
    """Return why ``report``'s supervisor is known to be gone, or None if it may be alive.

    ``host`` is this machine's name; ``stale_before`` the oldest heartbeat
    (aware datetime) that still counts as alive; ``supervising`` as for
    :func:`recover_interrupted_runs`.
    """
    from . import processes

    if report.host == host and report.supervisor_pid:
        if report.supervisor_pid == os.getpid():
            if supervising is not None and supervising() == report.pk:
                return None
            return "its supervisor (this process, pid %d) is not running it any more" % report.supervisor_pid
        alive = processes.is_same_process(report.supervisor_pid, report.supervisor_started)
        if alive is False:
            return "its supervisor (pid %d on %s) is gone" % (report.supervisor_pid, host)
        if alive:
            return None
    beat = report.heartbeat or report.invocation_datetime
    if beat < stale_before:
        return "no heartbeat from its supervisor (pid %s on %s) since %s" % (
            report.supervisor_pid,
            report.host or "?",
            beat.isoformat(timespec="seconds"),
        )
    return None


def kill_leftovers(report) -> int:
    """SIGKILL what is left of a run on this host; return how many signals were delivered.

    Its process group (id = the child's pid), when the group leader is the
    recorded child (same start time) or is gone (a group id stays reserved
    while any member lives, so it cannot be someone else's); and every process
    whose environment carries the run's ``TASKMANAGER_RUN`` marker, which also
    finds subprocesses that left the group with ``setsid``.
    """
    import signal

    from . import processes

    killed = 0
    if report.pid:
        leader = processes.start_time(report.pid)
        if leader is None or (report.pid_started is not None and leader == report.pid_started):
            killed += processes.kill_group(report.pid, signal.SIGKILL)
    for pid in processes.with_marker(report.run_marker()):
        killed += processes.kill(pid, signal.SIGKILL)
    if killed:
        logger.warning("taskmanager recovery: killed leftovers of interrupted report %s.", report.pk)
    return killed


def close_interrupted(report, why: str, now) -> int:
    """Close a running report as interrupted and release its task; return 1, or 0 if already closed."""
    from django.db import transaction
    from django.db.models import Max

    from . import logcapture
    from .models import LogLine, Report, Task

    with transaction.atomic():
        closed = Report.objects.filter(pk=report.pk, finished_datetime__isnull=True).update(
            result=Task.Result.FAILED, end_reason="interrupted", finished_datetime=now
        )
        if not closed:
            return 0
        last = LogLine.objects.filter(report_id=report.pk).aggregate(last=Max("seq"))["last"] or 0
        LogLine.objects.create(
            report_id=report.pk,
            seq=last + 1,
            level=logcapture.ERROR,
            stream=logcapture.SYSTEM,
            timestamp=now,
            text="Interrupted: %s. Closed by recovery (pid %d on %s)."
            % (why, os.getpid(), socket.gethostname()),
        )
        Task.objects.filter(pk=report.task_id, status=Task.Status.STARTED).end_run(
            last_datetime=report.invocation_datetime,
            last_result=Task.Result.FAILED,
            errors=report.errors,
            warnings=report.warnings,
        )
    logger.warning("taskmanager recovery: run %s of task %s interrupted: %s.", report.pk, report.task_id, why)
    _after_close(report, now)
    return 1


def _after_close(report, now) -> None:
    """Record the run history, prune old reports and notify, as the end of a run does; never raise."""
    from django.db import transaction

    from . import history
    from .models import Report, Task
    from .notifications import notify_run_end
    from .retention import prune_reports

    try:
        with transaction.atomic():
            history.record_run(report.task_id, report.invocation_datetime, now, Task.Result.FAILED)
    except Exception:  # noqa: BLE001 - the chart's history must not stop recovery
        logger.exception("Could not record the run history of task %s", report.task_id)
    try:
        prune_reports(report.task_id)
    except Exception:  # noqa: BLE001 - pruning must not stop recovery
        logger.exception("Could not prune the reports of task %s", report.task_id)
    # An interrupted run is a failed run: its notice goes out like any other
    # (notify_run_end logs and swallows its own failures).
    task = Task.objects.filter(pk=report.task_id).first()
    closed = Report.objects.filter(pk=report.pk).first()
    if task is not None and closed is not None:
        notify_run_end(task, closed)


def on_timer(supervising: Callable[[], int | None] | None = None) -> None:
    """The periodic pass (a uWSGI timer in an idle spooler): close interrupted runs; never raise."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        count = recover_interrupted_runs(supervising)
        if count:
            logger.warning("taskmanager recovery: recover_interrupted_runs handled %d run(s).", count)
    except Exception:  # noqa: BLE001 - the next tick tries again
        logger.exception("taskmanager periodic recovery failed")
    finally:
        close_old_connections()


def respool_missing(spool_dir: str, spool: Callable[[int, str, str, datetime | None], str], node: str) -> int:
    """Spool again this node's pending tasks that have no spool entry; return how many.

    Runs in a spooler process at its start (``spooler/uwsgi_handler.py``
    passes its spool directory, its backend's ``spool`` and ``node``): see
    :func:`respool`. ``manage.py respool_tasks`` does the same from outside.
    """
    return len(respool(spool_dir, spool, node=node))


@dataclass
class Respooled:
    """One task whose spool entry was missing (see :func:`respool`)."""

    task_id: int
    name: str
    status: str
    #: When the new entry runs (aware UTC); None or a past time means at once.
    at: datetime | None
    #: The new entry's path ("" on a dry run).
    path: str = ""


def due_time(task: Task, now: datetime) -> datetime:
    """When a pending task's lost entry must run: its stored next run, else Start's rule.

    A stored ``next_datetime`` in the past gives one run at once (the missed
    runs are coalesced, as a surviving spool file would have run once).
    """
    if task.next_datetime is not None:
        return task.next_datetime
    run_at, _anchor = schedule.first_run(
        task.scheduling, task.repetition_period or None, task.repetition_rate, now, schedule.project_tz()
    )
    return run_at


def respool(
    spool_dir: str,
    spool: Callable[[int, str, str, datetime | None], str],
    *,
    node: str | None = None,
    adopt: Iterable[str] = (),
    dry_run: bool = False,
) -> list[Respooled]:
    """Give a new spool entry to each task of this node whose entry is not in ``spool_dir``.

    Tasks considered: SCHEDULED or SPOOLED, and STARTED ones whose periodic
    chain has a next run (``run_token`` set), whose ``spooler_node`` is this
    node (``host:spool_dir``, see :func:`taskmanager.spoolfiles.node_matches`) or one of the
    ``adopt`` node strings (to take over the tasks of a node that is gone).
    An entry is missing when the file recorded in ``spooler_id`` is not in
    ``spool_dir`` (:func:`taskmanager.spoolfiles.is_live`).

    Each missing entry gets a new run token by one conditional UPDATE on the
    old token and old ``spooler_id``, then ``spool(task_id, token, trigger,
    at)`` writes the entry: of two processes recovering at once only one
    wins, and the old entry, should it reappear, is stale and runs nothing.
    The new entry runs at the task's stored next run (:func:`due_time`).

    :param spool: the function writing one entry, returning its path
        (``UwsgiBackend.spool`` inside uWSGI, a file writer outside).
    :param node: the node string recorded on the respooled tasks; default
        ``host:abspath(spool_dir)``.
    :returns: the tasks respooled (or that would be, with ``dry_run``).
    """
    node = node or spoolfiles.node_id(spool_dir)
    adopt = set(adopt)
    now = timezone.now()
    candidates = Task.objects.queued().order_by("pk")
    done = []
    for task in candidates:
        if not (spoolfiles.node_matches(task.spooler_node, spool_dir) or task.spooler_node in adopt):
            continue
        if spoolfiles.is_live(task.spooler_id, spool_dir):
            continue
        try:
            at = due_time(task, now)
        except schedule.ScheduleError as exc:
            logger.error("Task %s cannot be respooled: %s", task.pk, exc)
            continue
        item = Respooled(task.pk, task.name, task.status, at)
        if dry_run:
            done.append(item)
            continue
        token = new_token()
        won = Task.objects.filter(
            pk=task.pk,
            status=task.status,
            run_token=task.run_token,
            spooler_node=task.spooler_node,
            spooler_id=task.spooler_id,
        ).update(run_token=token, next_datetime=at, spooler_node=node, spooler_id="")
        if not won:
            continue  # another process recovered, claimed, stopped or edited it meanwhile
        try:
            item.path = spool(task.pk, token, Report.Trigger.RECOVERY, at if at > now else None)
        except Exception:  # noqa: BLE001 - the next recovery retries (entry still missing)
            logger.exception("Could not respool task %s", task.pk)
            continue
        Task.objects.filter(pk=task.pk, run_token=token).update(spooler_id=item.path)
        logger.warning(
            "taskmanager recovery: task %s (%s) had no spool entry; respooled for %s.",
            task.pk,
            task.name,
            at.isoformat() if at > now else "now",
        )
        done.append(item)
    return done


def on_spooler_start(
    supervising: Callable[[], int | None] | None = None,
    spool_dir: str | None = None,
    spool: Callable[[int, str, str, datetime | None], str] | None = None,
    node: str | None = None,
) -> None:
    """Run every recovery step; log, never raise (a spooler must start regardless).

    ``supervising`` as for :func:`recover_interrupted_runs`; with ``spool_dir``
    (and ``spool``, ``node``) the node's lost entries are respooled too
    (:func:`respool_missing`).
    """
    from django.db import close_old_connections

    close_old_connections()
    steps = [(recover_interrupted_runs, (supervising,))]
    if spool_dir is not None:
        steps.append((respool_missing, (spool_dir, spool, node)))
    for step, args in steps:
        try:
            count = step(*args)
            if count:
                logger.warning("taskmanager recovery: %s handled %d task(s).", step.__name__, count)
        except Exception:  # noqa: BLE001 - a failing recovery must not stop the spooler
            logger.exception("taskmanager recovery step %s failed", step.__name__)
    close_old_connections()

"""Runs whose supervisor is gone: the evidence, the leftovers' kill, the close as "interrupted".

A running report is closed only with evidence that its supervisor is gone
(:func:`interruption_evidence`); on this host what is left of the run is
killed first (:func:`kill_leftovers`); the report is closed and the task
released by conditional UPDATEs (:func:`close_interrupted`), followed by the
same tail as a normal end (:mod:`taskmanager.runend`). Imports neither the
runner nor a backend: the caller says which report this process supervises.
"""

import logging
import os
import signal
import socket
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import BooleanField, Case, Exists, F, Max, OuterRef, Q, When

from .. import dbclock, exceptions, fencing, logcapture, processes, runend
from ..db import write_db
from ..models import DjangoTaskResult, EndKind, LogLine, Report, Task

logger = logging.getLogger("taskmanager.recovery")

#: What a run closed here sets in its task besides ``end_values``: ``run_now_at``
#: kept. A run's own end restarts the wait of a "run now" deferred behind it,
#: because it writes that entry right after (``runner.claim.respool_deferred``);
#: a run closed by recovery writes none, so the entry is lost at once, and
#: ``recovery.runnow`` must not take it for one on its way (it would skip it
#: for ``WRITE_MARGIN``, and for ever where no periodic pass runs).
NO_ENTRY_ON_ITS_WAY = {"run_now_at": F("run_now_at")}


def recover_interrupted_runs(supervising: Callable[[], int | None] | None = None) -> int:
    """Close the runs whose supervisor is gone; return how many runs and tasks were fixed.

    A running report is declared interrupted only with evidence that its
    supervisor is gone, never because its spool file was seen again:

    * on this host (same host name *and* identity: boot and PID namespace,
      :func:`taskmanager.processes.node_identity`), its supervisor pid is not
      alive with the recorded start time (so a reused pid does not count as
      alive), or the supervisor is this very process while it supervises
      another run or none;
    * elsewhere (or without a recorded start time), its heartbeat is older
      than ``TASKMANAGER_HEARTBEAT_TIMEOUT`` plus ``TASKMANAGER_FENCE_MARGIN``
      seconds, tested in SQL on the database's clock
      (:func:`stale_heartbeat`), never on this machine's: by then a
      supervisor cut from the database has killed its command
      (:mod:`taskmanager.fencing`).

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
    host = socket.gethostname()
    fixed = 0
    for report in Report.objects.running().annotate(heartbeat_stale=stale_heartbeat()).order_by("pk"):
        why = interruption_evidence(report, host, report.heartbeat_stale, supervising)
        if why is None:
            continue
        if same_node(report, host):
            kill_leftovers(report)
        fixed += close_interrupted(report, why, dbclock.now())
    running = Report.objects.running().filter(task=OuterRef("pk"))
    released = Task.objects.filter(status=Task.Status.STARTED).exclude(Exists(running))
    count = released.end_run(**NO_ENTRY_ON_ITS_WAY)
    if count:
        logger.warning("taskmanager recovery: %d task(s) were STARTED without a running report.", count)
    return fixed + count


def same_node(report, host: str) -> bool:
    """Tell whether ``report``'s pids are this process's to judge: same host name and identity.

    Runs recorded without an identity (before issue 15) go by the host name alone.
    """
    if report.host != host:
        return False
    return not report.supervisor_identity or report.supervisor_identity == processes.node_identity()


def stale_heartbeat():
    """Annotation: whether a report's heartbeat (else its start) is older than the observers' wait.

    HEARTBEAT_TIMEOUT plus FENCE_MARGIN (:func:`taskmanager.fencing.observer_wait`).
    Tested in SQL on the database's clock: the heartbeat was written with it
    (``dbclock.DbNow()`` in the supervisor's flush), and this machine's clock
    may be off (issue 13, item 11).
    """
    wait = fencing.observer_wait(*fencing.limits())
    limit = dbclock.DbNow() - timedelta(seconds=wait)
    return Case(
        When(Q(heartbeat__lt=limit) | Q(heartbeat__isnull=True, invocation_datetime__lt=limit), then=True),
        default=False,
        output_field=BooleanField(),
    )


def interruption_evidence(
    report, host: str, heartbeat_stale: bool, supervising: Callable[[], int | None] | None = None
) -> str | None:
    """Return why ``report``'s supervisor is known to be gone, or None if it may be alive.

    ``host`` is this machine's name; ``heartbeat_stale`` whether the report's
    heartbeat is older than the timeout (:func:`stale_heartbeat`);
    ``supervising`` as for :func:`recover_interrupted_runs`.
    """
    if same_node(report, host) and report.supervisor_pid:
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
    if heartbeat_stale:
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
    with transaction.atomic(using=write_db()):
        closed = Report.objects.filter(pk=report.pk, finished_datetime__isnull=True).update(
            result=Task.Result.FAILED,
            end_reason="interrupted",
            end_kind=EndKind.INTERRUPTED,
            finished_datetime=now,
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
        # A django.tasks row of the run is never left RUNNING (taskmanager.djangotasks).
        DjangoTaskResult.objects.filter(report_id=report.pk, status=DjangoTaskResult.Status.RUNNING).update(
            status=DjangoTaskResult.Status.FAILED,
            finished_at=now,
            errors=[
                {
                    "exception_class_path": exceptions.class_path(exceptions.Interrupted),
                    "traceback": "The run was interrupted: %s." % why,
                }
            ],
        )
        Task.objects.filter(pk=report.task_id, status=Task.Status.STARTED).end_run(
            **NO_ENTRY_ON_ITS_WAY,
            last_datetime=report.invocation_datetime,
            last_result=Task.Result.FAILED,
            last_end_kind=EndKind.INTERRUPTED,
            errors=report.errors,
            warnings=report.warnings,
        )
    logger.warning("taskmanager recovery: run %s of task %s interrupted: %s.", report.pk, report.task_id, why)
    _after_close(report, now)
    return 1


def _after_close(report, now) -> None:
    """Record the run history, prune old reports and notify, as the end of a run does; never raise."""
    try:
        with transaction.atomic(using=write_db()):
            more_to_prune = runend.record(
                report.task_id,
                report.invocation_datetime,
                now,
                Task.Result.FAILED,
                logger,
                end_kind=EndKind.INTERRUPTED,
            )
    except Exception:  # noqa: BLE001 - the chart's history must not stop recovery
        logger.exception("Could not record the run history of task %s", report.task_id)
        more_to_prune = True
    # An interrupted run is a failed run: its notice goes out like any other.
    task = Task.objects.filter(pk=report.task_id).first()
    closed = Report.objects.filter(pk=report.pk).first()
    runend.after_commit(report.task_id, more_to_prune, logger, task=task, report=closed)

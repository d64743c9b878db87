"""Claiming a run: the one conditional UPDATE that turns a spool entry into a running report.

:func:`claim` checks the entry's token against the task, optionally forks the command's child
first (``prefork``: it prepares itself while the claim commits), turns the task STARTED and
inserts the Report row (its text redacted) in one transaction (one durable commit), releases the
child, and spools a periodic task's next run through the configured backend. Also here: the
next slot of a periodic task, skipping a slot that came due during a run, the argv a run uses.
"""

import logging
import time
from datetime import datetime

from django.db import transaction
from django.db.models import F

from .. import arguments, callargs, dbclock, policy, prepared, processes, redaction, schedule, spoolfiles
from ..conf import queue_name, serves_queue
from ..db import write_db
from ..models import Report, Task, new_token
from ..spooler import get_backend
from . import reuse, statements

logger = logging.getLogger("taskmanager.runner")


def local_tz():
    """The zone schedules are computed in: the project's TIME_ZONE (see schedule.project_tz)."""
    return schedule.project_tz()


def _next_run_after(task: Task, now: datetime) -> datetime | None:
    """The periodic task's next slot after this one (None for a one-shot task).

    The grid is the anchor's (``scheduling``), never the time this run
    started: a late run does not move the later ones, and missed slots are
    coalesced into this run. A schedule that cannot be computed (edited
    behind the form's back, or past the year 9999) ends the chain instead of
    failing the claim, which would leave the task pending for ever.
    """
    try:
        if not (task.is_periodic and task.scheduling):
            return None
        return schedule.next_slot(
            task.scheduling,
            task.repetition_period,
            task.repetition_rate,
            max(now, task.next_datetime or now),
            local_tz(),
        )
    except schedule.ScheduleError as exc:
        logger.error("Task %s: no next run (%s); this run is its last.", task.pk, exc)
        return None


def _respool(task_id: int, token: str, trigger: str, at: datetime | None) -> str:
    backend = get_backend()
    path = backend.spool(task_id, token, trigger, at)
    # Recovery finds a task's entry by node and path: keep both current.
    Task.objects.filter(pk=task_id, run_token=token).update(spooler_id=path, spooler_node=backend.node())
    return path


def claim(task_id: int, token: str, trigger: str, prefork: bool = False):
    """Claim the run for (task_id, token): return (task, report) or None.

    With ``prefork`` the command's child process is forked before the claim
    (see :class:`Child`): it prepares itself while the claim commits, the
    report row is inserted with its pid, command line and supervisor in the
    same transaction as the claim (one durable commit), and it runs the
    command once released right after that commit. A lost claim kills it
    before it ran anything of the command. Without ``prefork``, the
    :class:`Supervisor` forks the child when it runs.
    """
    # The database's clock: the "not before" of the entry and the times of
    # the run are compared by other nodes, whose clocks may differ. The
    # report's first heartbeat is this now: fencing counts from before it.
    sent = time.monotonic()
    now = dbclock.now()
    task = statements.read_task(task_id)
    if task is None:
        logger.info("Task %s no longer exists: spool entry consumed without running.", task_id)
        return None
    if not serves_queue(task.queue):
        _leave_to_queue(task)
        return None
    if task.payload_version > spoolfiles.PAYLOAD_VERSION:  # rolling deploys: the row is left as it is
        logger.warning("taskmanager: task %s has a newer payload version: entry not run.", task_id)
        return None
    if trigger == Report.Trigger.RUN_NOW:
        if not token or token != task.run_now_token:
            logger.info("Stale 'run now' entry for task %s consumed.", task_id)
            return None
        if task.status == Task.Status.STARTED:
            # Deferred, not lost: the token stays, and the end of the current
            # run spools the entry again (respool_deferred).
            logger.info("'Run now' of task %s deferred until its current run ends.", task_id)
            return None
        claimable = Task.objects.filter(
            pk=task.pk,
            run_now_token=token,
            status__in=[Task.Status.IDLE, *Task.PENDING],
        )
        # resume_status first: MySQL/MariaDB evaluate SET assignments left to
        # right, so after "status = STARTED" F("status") would read STARTED.
        changes = {"resume_status": F("status"), "status": Task.Status.STARTED, "run_now_token": ""}
        changes["run_now_arguments"] = None  # its one-off arguments, if any, are this run's only
        next_token, next_at = "", None
    else:
        if not token or token != task.run_token:
            logger.info("Stale spool entry for task %s consumed without running.", task_id)
            return None
        if task.status == Task.Status.STARTED:
            if trigger == Report.Trigger.START and not task.is_periodic:
                # A one-shot Start meeting a "run now" run: deferred to its
                # end (respool_deferred), not counted as a skipped slot.
                Task.objects.filter(pk=task.pk, run_token=token).update(spooler_id="")
                logger.info("Start of task %s deferred until its current run ends.", task_id)
                return None
            _skip_slot(task, token, now)
            return None
        if task.next_datetime and now < task.next_datetime:
            # Never start before the time stored in the DB (uWSGI's 'at' has
            # whole-second resolution): put the entry back for later.
            _respool(task.pk, token, trigger, task.next_datetime)
            return None
        next_at = _next_run_after(task, now)
        next_token = new_token() if next_at else ""
        claimable = None  # a pending task's claim is the prepared statements.claim_start
        changes = {
            "pk": task.pk,
            "token": token,
            "run_token": next_token,
            "next_datetime": next_at,
            "payload_version": spoolfiles.PAYLOAD_VERSION,
        }
    marks = {}
    # Checked where the run happens: uWSGI serves without running system checks,
    # rows may predate the rules, rights change after a run was queued (policy).
    argv = runnable_argv(task, trigger)
    refusal = policy.claim_refusal(task, trigger, argv)
    # A refused run's report still shows what it would have run.
    command_line = callargs.run_line(task.command, argv) if argv is not None else ""
    if refusal is not None:
        argv = None
    marks["prepared"] = time.perf_counter()
    child = reuse.child_for(task, argv) if prefork and argv is not None else None
    if child is not None:
        marks["forked"] = time.perf_counter()
    # The claim and the Report row commit together (one durable commit); the
    # next run is spooled only after that commit, or its spooler could read
    # the old token and consume the entry as stale.
    report = None
    try:
        redactor = redaction.redactor()  # the report's text is stored redacted; the run's log reuses it
        with transaction.atomic(using=write_db()):
            claimed = (
                claimable.update(**changes) if claimable is not None else statements.claim_start(**changes)
            )
            if claimed == 1:
                report = _create_report(task, trigger, now, redactor[0], command_line, child)
    finally:
        if report is None and child is not None:
            child.cancel()
    if report is None:
        logger.info("Task %s was claimed by another process or changed meanwhile.", task_id)
        return None
    marks["claim_committed"] = time.perf_counter()
    if child is not None:
        child.release(report.run_marker(), argv)
        marks["released"] = time.perf_counter()
    report.child, report.redactor = child, redactor
    report.heartbeat_sent = sent
    report.refusal = refusal
    report.timing_marks = marks
    if next_token:
        try:
            _respool(task.pk, next_token, Report.Trigger.SCHEDULE, next_at)
        except Exception as exc:  # noqa: BLE001 - recorded; recovery re-spools it
            logger.exception("Could not spool the next run of task %s", task.pk)
            report.spool_error = str(exc)
    marks["claimed"] = time.perf_counter()
    return task, report


def _leave_to_queue(task: Task) -> None:
    """Refuse an entry of a task whose queue this node does not serve; leave the row to a node serving it.

    The row stays pending; its node is cleared when it is this one, so that
    the take-over pass of a serving node takes it at once
    (``recovery/takeover.py``).
    """
    Task.objects.filter(pk=task.pk, spooler_node=get_backend().node()).exclude(
        status=Task.Status.STARTED
    ).update(spooler_node="", spooler_id="")
    logger.warning(
        "taskmanager: task %s (%s) is in queue %s, and this node does not serve queue %s: "
        "entry consumed without running; left to a node serving it.",
        task.pk,
        task.name,
        queue_name(task.queue),
        queue_name(task.queue),
    )


def runnable_argv(task: Task, trigger: str = "") -> list[str] | None:
    """Return the argv of the run's command (Task.arguments_for), or None when it cannot run (invalid, inactive)."""
    if not task.command.active:
        return None
    try:
        return callargs.argv_of(task.command, task.arguments_for(trigger))
    except arguments.ArgumentsError:
        return None


def _create_report(task: Task, trigger: str, now: datetime, redact, command_line: str, child) -> Report:
    run_now, other = trigger == Report.Trigger.RUN_NOW, task.run_now_arguments
    # Report.objects.create(), its INSERT prepared once per process (prepared.insert).
    report = Report(
        task=task,
        trigger=trigger if trigger in Report.Trigger.values else Report.Trigger.SCHEDULE,
        user_id=task.run_now_by_id if run_now else task.started_by_id,
        user_name=task.run_now_by_name if run_now else task.started_by_name,
        # Who last defined what this run runs (the task as the claim read it).
        defined_by_id=task.definition_changed_by_id,
        defined_by_name=task.definition_changed_by.get_username() if task.definition_changed_by else "",
        definition_version=task.version,
        invocation_datetime=now,
        command_line=redact(command_line),
        arguments_override=redact(other) if run_now and other is not None else None,
        pid=child.pid if child is not None else None,
        pid_started=child.started if child is not None else None,
        **processes.supervised_here(now),
    )
    return prepared.insert(report)


#: The task's fields :func:`respool_deferred` decides by (the end's UPDATE returns them).
DEFERRED_FIELDS = ("status", "run_token", "run_now_token", "spooler_id", "next_datetime")


def respool_deferred(task_id: int, row: dict | None = None) -> None:
    """After a run's end: spool again the entries the claim deferred while the task ran.

    A queued "run now" (its token still set), and a pending run whose entry
    was consumed (``spooler_id`` emptied by the claim). Spooling an entry
    twice is harmless: the first claim swaps its token, the second finds it
    stale. ``row``: the task's :data:`DEFERRED_FIELDS` from the end's UPDATE (else read here).
    """
    if row is None:
        row = Task.objects.filter(pk=task_id).values(*DEFERRED_FIELDS).first()
    if row is None or row["status"] == Task.Status.STARTED:
        return
    status, run_token, run_now_token, spooler_id, next_at = (row[name] for name in DEFERRED_FIELDS)
    if run_now_token:
        get_backend().spool(task_id, run_now_token, Report.Trigger.RUN_NOW, None)
    if status in Task.PENDING and run_token and not spooler_id:
        at = next_at if next_at and next_at > dbclock.now() else None
        _respool(task_id, run_token, Report.Trigger.START, at)


def _skip_slot(task: Task, token: str, now: datetime) -> None:
    """A slot came due while the task is still running: move to the next one."""
    next_at = _next_run_after(task, now)
    next_token = new_token() if next_at else ""
    moved = Task.objects.filter(pk=task.pk, run_token=token, status=Task.Status.STARTED).update(
        run_token=next_token, next_datetime=next_at, payload_version=spoolfiles.PAYLOAD_VERSION
    )
    if moved:
        # By primary key, as Stop does (actions.stop): an UPDATE scanning the
        # task's reports through their index can deadlock on MySQL/MariaDB
        # with the end of the run, which prunes old reports through it.
        running = list(
            Report.objects.filter(task=task, finished_datetime__isnull=True).values_list("pk", flat=True)
        )
        Report.objects.filter(pk__in=running, finished_datetime__isnull=True).update(
            skipped_runs=F("skipped_runs") + 1
        )
        if next_token:
            _respool(task.pk, next_token, Report.Trigger.SCHEDULE, next_at)


process_start_time = processes.start_time

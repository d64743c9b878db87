"""A spooler running django.tasks rows: the hint's handler, the claim, the supervised run, the row's end.

:func:`execute_hint` is what a spooler process does with a spool hint of a
django.tasks row (``Report.Trigger.ENQUEUE``): it claims the best due row of
the queues this node serves, which need not be the hinted one (a hint says
"there is work": the highest priority runs first, then the oldest), and
runs it as a command run. The claim is one conditional UPDATE of the row
from READY to RUNNING, checked by its row count, with the run's Report
inserted in the same transaction: of two spoolers claiming one row one
wins, and a row runs once. The run is the run path's own
(:class:`taskmanager.runner.Supervisor`): a forked child (from the fork
server, or a reused child), log capture with levels, heartbeat, Stop, the
time-out, fencing, the report's end. The child runs the internal command
``_run_task_result`` (:mod:`.work`), which calls the function and stores its
result. The report belongs to the function's *carrier task*, a Task row per
function path (:func:`carrier_task`) whose command is that internal command:
its rights are the rights over the function's results, its report list and
history those of the function. Once the run has ended, a row still RUNNING
(the function did not return or raise: stopped, timed out, killed) is
FAILED with the error :mod:`taskmanager.exceptions` names for the run's end
kind (:func:`fail_unfinished`); recovery does the same for a run whose
supervisor died (``recovery/interrupted.py``). A row whose carrier task
cannot be made (a task of another command holds its name) is FAILED unrun
with ``Crashed`` saying so (:func:`refuse_row`): left READY it would head
its queue for ever, and no row behind it would run.
"""

import logging
import os
import time

from django.conf import settings
from django.db import IntegrityError, transaction

from .. import dbclock, exceptions, prepared, processes
from ..conf import served_queues
from ..db import write_db
from ..models import Command, DjangoTaskResult, EndKind, Report, Task
from ..runner import Supervisor, drop_broken_connections, reuse, statements
from ..spooler import get_backend

logger = logging.getLogger("taskmanager.runner")

CARRIER_COMMAND = DjangoTaskResult.CARRIER_COMMAND
CARRIER_PREFIX = DjangoTaskResult.CARRIER_PREFIX

#: Due rows read per claim: the next one is tried when another spooler took one.
CANDIDATES = 5


def execute_hint(result_id: str) -> Report | None:
    """Claim and run the best due row for a spool hint; return its report, or None when none was left."""
    drop_broken_connections()
    child = None
    try:
        candidates = list(
            DjangoTaskResult.objects.due(served_queues()).values_list(
                "pk", "task_path", "worker_ids", "backend"
            )[:CANDIDATES]
        )
        for pk, path, workers, alias in candidates:
            try:
                task = carrier_task(path)
            except CarrierUnavailable as exc:
                # Left READY it would be the head of its queue for ever: no
                # row behind it would run.
                refuse_row(pk, str(exc))
                continue
            if child is not None and child.reuse_key != reuse.key(task):
                child.cancel()  # forked for another function's row, which another spooler took
                child = None
            if child is None:
                child = reuse.child_for(task, [pk])
            report = claim_row(pk, path, workers, task, alias, child)
            if report is not None:
                break
        else:
            logger.debug("Spool hint of task result %s: no due row left to claim.", result_id)
            return None
        child = None  # the run's now: the supervisor follows it and reaps it
        supervisor = FunctionSupervisor(task, report, [pk])
        try:
            supervisor.run()
        finally:
            fail_unfinished(pk, report)
        return report
    finally:
        if child is not None:
            child.cancel()  # it ran nothing: no row was claimed for it
        drop_broken_connections()


def claim_row(pk: str, path: str, workers: list, task: Task, alias: str, child) -> Report | None:
    """Turn the row RUNNING and insert its run's Report, in one transaction; None if another spooler won.

    ``child`` (forked before the claim, as a command run's: it prepares itself
    while the claim commits) is the report's process from its INSERT on, and is
    released right after the commit. The Report is inserted first and the row's
    conditional UPDATE points at it: a lost claim rolls both back.
    """
    task.timeout = row_timeout(alias)
    sent = time.monotonic()  # fencing counts from before the first heartbeat
    now = dbclock.now()
    worker = "%s#%d" % (get_backend().node(), os.getpid())
    using = write_db()
    with transaction.atomic(using=using):
        report = Report(
            task=task,
            trigger=Report.Trigger.ENQUEUE,
            invocation_datetime=now,
            command_line="%s (task result %s)" % (path, pk),
            pid=child.pid,
            pid_started=child.started,
            **processes.supervised_here(now),
        )
        prepared.insert(report)  # Report.objects.create(), its INSERT compiled once per process
        claimed = DjangoTaskResult.objects.filter(pk=pk, status=DjangoTaskResult.Status.READY).update(
            status=DjangoTaskResult.Status.RUNNING,
            started_at=now,
            last_attempted_at=now,
            worker_ids=[*workers, worker],
            report=report,
        )
        if claimed != 1:
            transaction.set_rollback(True, using=using)
            return None
    child.release(report.run_marker(), [pk])
    report.child = child
    report.heartbeat_sent = sent
    return report


def row_timeout(alias: str) -> int | None:
    """The run's time-out in seconds: its backend's ``OPTIONS["TIMEOUT"]``, else None (the project's default)."""
    options = (getattr(settings, "TASKS", {}).get(alias) or {}).get("OPTIONS") or {}
    return options.get("TIMEOUT")


class CarrierUnavailable(Exception):
    """The name of a function's carrier task is held by a task of another command."""


def refuse_row(pk: str, reason: str) -> None:
    """FAIL the READY row ``pk`` without running it (``Crashed``: refused before the function ran)."""
    error = {
        "exception_class_path": exceptions.class_path(exceptions.Crashed),
        "traceback": "Not run: %s." % reason,
    }
    logger.error("taskmanager: task result %s not run: %s", pk, reason)
    failed = DjangoTaskResult.objects.filter(pk=pk, status=DjangoTaskResult.Status.READY).update(
        status=DjangoTaskResult.Status.FAILED, finished_at=dbclock.now(), errors=[error]
    )
    if failed:
        send_finished(pk)


# Carrier task pks by function path, per process (a forked process keeps the map: rows only).
_carriers: dict[str, int] = {}


def carrier_task(path: str) -> Task:
    """The carrier Task of the function ``path`` (created at its first run), its command loaded.

    Raises :class:`CarrierUnavailable` when a task of another command holds its name.
    """
    pk = _carriers.get(path)
    task = statements.read_task(pk) if pk else None  # a command claim's read, compiled once
    if task is None:
        command, _created = Command.objects.get_or_create(
            app_name="taskmanager", name=CARRIER_COMMAND, defaults={"run_by": Command.RunBy.SUPERUSERS}
        )
        name = (CARRIER_PREFIX + path)[:200]
        try:
            task, _created = Task.objects.select_related("command").get_or_create(
                name=name,
                command=command,
                defaults={"notify": False, "note": "Runs of the django.tasks function %s." % path},
            )
        except IntegrityError:
            # Task names are unique: one of another command (made before the
            # admin kept such names for carriers) leaves this function none.
            if Task.objects.filter(name=name).exclude(command=command).exists():
                raise CarrierUnavailable(
                    "a task of another command is named %r, the name of this function's carrier task: "
                    "rename that task" % name
                ) from None
            raise
        _carriers[path] = task.pk
    return task


class FunctionSupervisor(Supervisor):
    """The run path's supervisor for a claimed row, its child forked and released by the claim."""

    def __init__(self, task: Task, report: Report, argv: list[str]):
        super().__init__(task, report)
        self.argv = argv

    def _run(self) -> None:
        # The claim checked what there is to check (the row's status); the
        # child refuses a row not claimed for this very report (.work).
        if getattr(self.report, "child", None) is None:
            self.report.child = self.fork(self.argv)
        self.report.refusal = None
        return super()._run()


def fail_unfinished(pk: str, report: Report) -> int:
    """After the run: FAIL the row if its function neither returned nor raised; return 1 if it did.

    The error's class path says how the run ended (:mod:`taskmanager.exceptions`),
    its text is the report's end reason (as the supervisor recorded it, else
    read). Then ``task_finished`` is sent. Not for a child that exited 0: the
    function returned and the child stored the row's end.
    """
    kind, reason = report.end_kind, report.end_reason
    if kind == EndKind.COMPLETED and report.exit_code == 0:
        return 0
    if not kind:  # the end was not recorded by this supervisor (it failed, or recovery closed it)
        kind, reason = Report.objects.filter(pk=report.pk).values_list("end_kind", "end_reason").first() or (
            "interrupted",
            "its report was deleted",
        )
    error = {
        "exception_class_path": exceptions.class_path(exceptions.for_end_kind(kind)),
        "traceback": "The run ended before the function returned: %s." % (reason or kind),
    }
    failed = DjangoTaskResult.objects.filter(pk=pk, status=DjangoTaskResult.Status.RUNNING).update(
        status=DjangoTaskResult.Status.FAILED, finished_at=dbclock.now(), errors=[error]
    )
    if failed:
        send_finished(pk)
    return failed


def send_finished(pk: str) -> None:
    """Send django.tasks' ``task_finished`` for the row; never raise."""
    try:
        # Deferred: the API exists only where django.tasks or its backport is installed,
        # which is where such rows are made.
        from .api import task_finished
        from .backend import to_task_result

        result = to_task_result(DjangoTaskResult.objects.get(pk=pk))
        task_finished.send(type(result.task.get_backend()), task_result=result)
    except Exception:  # noqa: BLE001 - a receiver's failure must not break the spooler
        logger.exception("taskmanager: task_finished of task result %s failed", pk)

"""The end of a run: its reason, and the one transaction that records it.

:func:`end_reason` turns the child's wait status and what the follower saw
(a stop, the timeout, the child's own outcome) into the run's :class:`End`:
its kind, its reason and its exit code (a pure function). :class:`RunEnd` writes the report's result, the task's side of the
end (``TaskQuerySet.end_values``), the run's history and the pruning of small old
reports in one transaction, retried while the database is away; then the
pruning of big logs, the notice (:mod:`taskmanager.runend`) and the runs
deferred behind this one (``claim.respool_deferred``).

The end's SQL is lean (issue 17): where the database has ``UPDATE ...
RETURNING`` (:mod:`.sql`), the report's UPDATE returns its skipped runs and
the task's UPDATE the tokens of the deferred runs, so nothing is read before
or after the transaction; the history row (and the pruning, at every tenth
run) goes in without a savepoint, and only if it fails is the end written
again with those in a savepoint of their own (:class:`HistoryFailed`).
"""

import logging
import os
import signal
import time
from datetime import datetime
from typing import NamedTuple

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists

from .. import dbclock, history, logcapture, prepared, retention, runend
from ..db import write_db
from ..models import EndKind, Report, Task
from . import statements
from .claim import DEFERRED_FIELDS, respool_deferred
from .follow import ChildFollower, seconds_text
from .reportlog import ReportLog

logger = logging.getLogger("taskmanager.runner")

# Attempts at writing a run's end before giving up (the DB may be restarting);
# the pauses between them, in seconds.
_FINISH_PAUSES = (0.5, 1.0, 2.0, 4.0)
# What the end's UPDATE of the report returns (where the database can).
_SKIPPED = ("skipped_runs",)


class End(NamedTuple):
    """How a run ended: its kind (``EndKind``), its reason (free text) and its exit code."""

    kind: str
    reason: str
    exit_code: int | None = None

    @property
    def failed(self) -> bool:
        return self.kind != EndKind.COMPLETED


def end_reason(status: int, follower: ChildFollower) -> End:
    """Return the run's :class:`End`, from the child's wait status and what the follower saw."""
    code = os.waitstatus_to_exitcode(status)
    if follower.stop_user is not None:
        return End(EndKind.STOPPED, "stopped by user %s" % follower.stop_user)
    if follower.timed_out:
        return End(EndKind.TIMED_OUT, "timed out after %s seconds" % seconds_text(follower.timeout))
    if follower.fenced:
        return End(EndKind.FENCED, "fenced: its heartbeat could not be written")
    if follower.outcome:
        return End(EndKind.CRASHED, follower.outcome)
    if code < 0:
        return End(EndKind.CRASHED, "signal %s" % signal.Signals(-code).name)
    if code != 0:
        return End(EndKind.EXIT_CODE, "exit code %d" % code, code)
    return End(EndKind.COMPLETED, "completed")


class HistoryFailed(Exception):
    """The run's history row or pruning failed in the end's transaction, which rolled back: write the end again."""


class RunEnd:
    """Record the end of one run: its report, its task, its history; then prune and notify."""

    def __init__(self, task: Task, report: Report, log: ReportLog, marks: dict):
        self.task = task
        self.report = report
        self.log = log
        self.marks = marks
        self.skipped_noted = False
        # Whether this end prunes old reports (retention.prune_due counts each end once).
        self.prune: bool | None = None
        # The history row in a savepoint of its own: once it failed without one.
        self.history_apart = False
        # The task's DEFERRED_FIELDS as the end's UPDATE returned them (None: read after the commit).
        self.deferred: dict | None = None

    def finish(self, end: End) -> None:
        """Record the run's end; retry while the database is unreachable.

        A run whose report was deleted meanwhile ends without writing one;
        one closed by recovery is left as recovery wrote it.
        """
        log = self.log
        for pause in (*_FINISH_PAUSES, None):
            if log.gone:
                return self.finish_gone()
            try:
                try:
                    return self._finish(end)
                except HistoryFailed as exc:
                    logger.debug(
                        "Run history of task %s failed; the end again, apart", self.task.pk, exc_info=exc
                    )
                    self.history_apart = True
                    return self._finish(end)
            except IntegrityError as exc:
                # Log lines of a report deleted meanwhile break their foreign key.
                log.db_failed(exc)
                log.check_report()
                if not log.gone and pause is None:
                    raise
            except DatabaseError as exc:
                if pause is None:
                    raise
                log.db_failed(exc)
            if pause is not None:
                time.sleep(pause)

    def finish_gone(self) -> None:
        if self.log.gone != "deleted":
            return
        # The task may still exist (only its report was deleted): take it
        # out of STARTED, unless another run of it is going on.
        running = Report.objects.running().filter(task_id=self.task.pk)
        Task.objects.filter(pk=self.task.pk, status=Task.Status.STARTED).exclude(Exists(running)).end_run()

    def _finish(self, end: End) -> None:
        # No close_old_connections() here: with CONN_MAX_AGE = 0 it would
        # reconnect for nothing (costly on SQLite); a connection that broke
        # during the run fails the first query, and finish() retries.
        log = self.log
        reason = log.redact(end.reason)  # the notice reads it from self.report
        returning = prepared.returns_from_update(write_db())
        if not returning:  # read first; else the report's UPDATE returns it
            self.note_skipped(Report.objects.filter(pk=self.report.pk).values_list("skipped_runs", flat=True))
        if end.failed:
            result = Task.Result.FAILED
        elif log.errors:
            result = Task.Result.ERRORS
        elif log.warnings:
            result = Task.Result.WARNINGS
        else:
            result = Task.Result.OK
        now = dbclock.now()
        started = self.report.invocation_datetime
        log.report_changes.update(
            result=result,
            finished_datetime=now,
            end_reason=reason[:200],
            end_kind=end.kind,
            exit_code=end.exit_code,
        )
        # flush() forgets the lines it wrote; should this transaction fail
        # after it, they are still to be written by the next attempt.
        batch, batch_bytes, noted = log.batch, log.batch_bytes, self.skipped_noted
        fields = _SKIPPED if returning else ()
        try:
            with transaction.atomic(using=write_db()):
                ended = log.flush(running_only=True, savepoint=False, returning=fields) == 1
                # (not ended: the transaction is marked for rollback)
                if ended and log.returned and self.note_skipped([log.returned["skipped_runs"]]):
                    log.flush(savepoint=False)  # the note's line
                more_to_prune = self.close_run(started, now, result, end.kind) if ended else False
        except BaseException:
            log.batch, log.batch_bytes, self.skipped_noted = batch, batch_bytes, noted
            raise
        if not ended:
            # Deleted, or closed by recovery meanwhile: leave both as they are.
            log.report_changes = {}
            return log.check_report()
        self.report.result = result
        self.report.end_reason = reason
        self.report.end_kind, self.report.exit_code = end.kind, end.exit_code
        self.report.finished_datetime = now
        self.marks["saved"] = time.perf_counter()
        runend.after_commit(
            self.task.pk, more_to_prune, logger, task=self.task, report=self.report, marks=self.marks
        )
        try:
            # A carrier task (django.tasks) is never Started, spooled or run now: nothing is deferred.
            if not self.task.is_carrier:
                respool_deferred(self.task.pk, self.deferred)
        except Exception:  # noqa: BLE001 - logged; the periodic recovery re-spools lost entries
            logger.exception("Could not spool the deferred runs of task %s", self.task.pk)

    def note_skipped(self, skipped) -> bool:
        """Add the log's line about the scheduled runs skipped meanwhile, once; return whether it did.

        ``skipped``: the report's ``skipped_runs``, as the one value of an iterable (none: no report).
        """
        skipped = next(iter(skipped), 0)
        if not skipped or self.skipped_noted:
            return False
        self.skipped_noted = True
        self.log.add_line(
            logcapture.WARNING,
            logcapture.SYSTEM,
            "%d scheduled run(s) came due while this run was going and were skipped." % skipped,
        )
        return True

    def close_run(self, started: datetime, now: datetime, result: str, kind: str) -> bool:
        """Write the task's side of the run's end, its history, and prune; in the finish transaction.

        Return whether old reports are left for :func:`taskmanager.retention.prune_reports` (after the commit).
        Raise :class:`HistoryFailed` when the history row failed outside a savepoint.
        """
        duration = history.run_duration(started, now)
        values = dict(
            last_datetime=started,
            last_result=result,
            last_end_kind=kind,
            last_duration=duration,
            errors=self.log.errors,
            warnings=self.log.warnings,
        )
        # UPDATE ... SET Task.objects.end_values(**values) WHERE the task is STARTED.
        task_ended, self.deferred = statements.end_task(self.task.pk, values, DEFERRED_FIELDS)
        if not task_ended:
            Task.objects.filter(pk=self.task.pk).update(last_duration=duration)
        # Old reports and history rows go at the periodic pass (or, with
        # none, at every retention.PRUNE_EVERY-th run of the task in this
        # process): not a DELETE and an audit entry at a run's end.
        if self.prune is None:
            self.prune = retention.prune_due(self.task.pk)
        # No savepoint around the history row and the pruning unless they
        # failed without one (then finish() writes the end again).
        try:
            return runend.record(
                self.task.pk,
                started,
                now,
                result,
                logger,
                prune=self.prune,
                savepoint=self.history_apart,
                update_task=False,
                end_kind=kind,
            )
        except Exception as exc:  # only without savepoint: with one, runend.record swallows it
            raise HistoryFailed(str(exc)) from exc

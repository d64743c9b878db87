"""A run's log on its way to the database: ``ReportLog``.

Redacts secrets (:mod:`taskmanager.redaction`) from every line and report field it stores,
counts the lines by level, batches LogLine rows within the byte bound, flushes them with the
report's counters and pending changes (heartbeat, progress, pid) in one transaction, survives
database errors (lines kept, then dropped and counted past a bound), notices a report that was
deleted or closed by recovery meanwhile (:attr:`ReportLog.gone`), renews fencing's ``lease``.
"""

import logging
import time

from django.db import DatabaseError, DataError, IntegrityError, connections, transaction

from .. import fencing, logcapture, logstore, redaction
from ..conf import app_settings
from ..db import write_db
from ..models import Report
from . import statements

logger = logging.getLogger("taskmanager.runner")

# Seconds to wait before writing to the database again after an error.
_DB_RETRY_SECONDS = 1.0
#: The range of LogLine.level on every database: a PositiveSmallIntegerField
#: (PostgreSQL's binary COPY wrapped 40000 to -25536, which its CHECK then
#: refused for the whole batch; MySQL refuses it).
MIN_LEVEL, MAX_LEVEL = 0, 32767
#: Report fields holding text of the run, redacted like its lines.
REDACTED_FIELDS = ("command_line", "arguments_override", "end_reason", "progress_message")
#: What a value the database cannot take raises: Django's DataError, and the
#: drivers' own OverflowError/ValueError for numbers (sqlite3: "Python int
#: too large to convert to SQLite INTEGER"), which are no DatabaseError.
DATA_ERRORS = (DataError, OverflowError, ValueError)


class ReportLog:
    """The log lines, counters and pending report changes of one run."""

    def __init__(self, task, report: Report):
        self.task = task
        self.report = report
        self.seq = 0
        # Rows for logstore.insert_rows(), written by flush().
        self.batch: list[tuple] = []
        self.batch_bytes = 0
        self.stamps = logstore.Stamps(write_db())
        self.report_id = report.pk
        # Read once per run: add_line() runs for every line of the log.
        self.max_log_bytes = app_settings.MAX_LOG_BYTES
        self.batch_lines_limit = app_settings.LOG_BATCH_LINES
        self.batch_bytes_limit = app_settings.LOG_BATCH_BYTES
        self.stored_bytes = 0
        self.lines = self.warnings = self.errors = 0
        self.truncated = False
        # Report fields written with the next flush (heartbeat, progress, pid, the end).
        self.report_changes: dict = {}
        # Why the run cannot be reported any more: "deleted" (its report or
        # task was deleted) or "closed" (recovery closed it as interrupted).
        self.gone: str | None = None
        self.db_retry_at = 0.0
        self.lost_lines = 0
        # Fencing's lease, from the claim's heartbeat (inactive on SQLite: see fencing.Lease).
        self.lease = fencing.Lease(getattr(report, "heartbeat_sent", None), connections[write_db()].vendor)
        # A batch failed with a data error: the next flush writes its rows
        # one by one and replaces a row that fails by a note (flush()).
        self.repair = False
        self.returned: dict | None = None  # what the last flush's UPDATE returned (flush(returning=...))
        # Built once per run (by the claim, which stored the report's text redacted with it).
        self.redact, pattern_errors = getattr(report, "redactor", None) or redaction.redactor()
        for name in REDACTED_FIELDS[:2]:  # stored by the claim (the notice reads this object)
            text = self.redact(getattr(report, name) or "")
            if text != (getattr(report, name) or ""):
                setattr(report, name, text)
                self.report_changes[name] = text
        for error in pattern_errors:
            self.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "TASKMANAGER_REDACT_PATTERNS: %s; it is ignored." % error,
            )

    def add_line(self, level: int, stream: str, text: str, ts: int | None = None) -> None:
        """Count and store one line of the log; ``ts``: unix time in microseconds (default now).

        Lines of stream SYSTEM (the app's own) are never counted. A line
        longer than logcapture.MAX_LINE_CHARS is stored, and counted, as
        several lines.
        """
        if self.gone:
            return
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            stored = min(max(level, MIN_LEVEL), MAX_LEVEL)
            self.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "The next line's level %d is outside %d-%d; it is stored as %d."
                % (level, MIN_LEVEL, MAX_LEVEL, stored),
            )
            level = stored
        text = self.redact(logcapture.clean_text(text))
        if len(text) > logcapture.MAX_LINE_CHARS:
            for piece in logcapture.split_long(text):
                self.add_line(level, stream, piece, ts)
            return
        if stream != logcapture.SYSTEM:
            self.lines += 1
            if level >= logcapture.ERROR:
                self.errors += 1
            elif level >= logcapture.WARNING:
                self.warnings += 1
        self.store_line(level, stream, text, ts)

    def store_line(self, level: int, stream: str, text: str, ts: int | None) -> None:
        """Queue one cleaned line (at most MAX_LINE_CHARS) for the next batch."""
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if self.stored_bytes + size > self.max_log_bytes and stream != logcapture.SYSTEM:
            if not self.truncated:
                self.truncated = True
                self.add_line(
                    logcapture.WARNING,
                    logcapture.SYSTEM,
                    "The log reached its size limit (TASKMANAGER_MAX_LOG_BYTES = %d bytes): "
                    "later lines are counted but not stored." % self.max_log_bytes,
                )
            return
        self.stored_bytes += size
        batch = self.batch
        if batch and self.batch_bytes + size > self.batch_bytes_limit:
            # Flush first: a batch stays within its byte bound (one INSERT
            # must fit MySQL's max_allowed_packet) unless one line exceeds it.
            self.safe_flush()
            batch = self.batch
        self.seq += 1
        batch.append(
            (
                self.report_id,
                self.seq,
                level,
                2 if level >= logcapture.ERROR else 1 if level >= logcapture.WARNING else 0,
                stream,
                self.stamps(ts or time.time_ns() // 1000),
                text,
            )
        )
        self.batch_bytes += size
        if len(batch) >= self.batch_lines_limit or self.batch_bytes >= self.batch_bytes_limit:
            self.safe_flush()

    def flush(self, running_only: bool = False, savepoint: bool = True, returning: tuple = ()) -> int | None:
        """Write pending lines and counters to the database, in one transaction.

        Return the number of report rows updated (0: the report is gone, or
        with ``running_only`` already finished, and then nothing is written),
        None if nothing was pending. Raise DatabaseError as the database
        does; nothing pending is lost then. Inside a transaction, without
        ``savepoint``, a ``running_only`` flush that updated nothing marks the
        enclosing transaction for rollback. ``returning``: fields put in :attr:`returned` (:func:`.statements.update_report`).
        """
        if not self.batch and not self.report_changes:
            return None
        changes = self.report_changes
        for name in REDACTED_FIELDS:
            if changes.get(name):
                # (a marker longer than the secret must not overflow a CharField)
                changes[name] = self.redact(changes[name])[: Report._meta.get_field(name).max_length]
        using = write_db()
        outer = transaction.get_connection(using).in_atomic_block
        sent = time.monotonic()
        renewing = "heartbeat" in self.report_changes
        try:
            with transaction.atomic(using=using, savepoint=savepoint):
                if self.batch:
                    if self.repair:
                        self._insert_one_by_one()
                    else:
                        logstore.insert_rows(self.batch, using)
                counts = {"lines": self.lines, "warnings": self.warnings, "errors": self.errors}
                values = {**counts, **self.report_changes}
                updated, self.returned = statements.update_report(
                    self.report_id, values, running_only, returning
                )
                if running_only and updated != 1:
                    transaction.set_rollback(True, using=using)
                    return updated
        except DATA_ERRORS as exc:
            # A value nobody foresaw: write the batch again row by row, only
            # the bad row becoming a note; never fail the run's log or end.
            if self.repair or not self.batch:
                raise
            self.repair = True
            logger.warning(
                "Run of task %s: a log batch was refused (%s); writing it row by row.", self.task.pk, exc
            )
            if outer:
                # Inside the caller's transaction, now unusable: let it retry
                # (it does on DatabaseError), with repair on.
                raise DataError(str(exc)) from exc
            return self.flush(running_only, savepoint)
        self.repair, self.batch, self.batch_bytes, self.report_changes = False, [], 0, {}
        if renewing and updated:
            self.lease.renew(sent)
        return updated

    def _insert_one_by_one(self) -> None:
        """Insert the batch row by row (a savepoint each); a row the database refuses becomes a note."""
        for row in self.batch:
            try:
                with transaction.atomic(using=write_db()):
                    logstore.insert_rows([row], write_db())
            except DATA_ERRORS as exc:
                report_id, seq, _level, _severity, _stream, stamp, _text = row
                note = "A line could not be stored (%s: %s); this note stands in for it." % (
                    type(exc).__name__,
                    str(exc)[:200],
                )
                with transaction.atomic(using=write_db()):
                    logstore.insert_rows(
                        [(report_id, seq, logcapture.WARNING, 1, logcapture.SYSTEM, stamp, note)], write_db()
                    )

    def safe_flush(self, force: bool = False) -> None:
        """Flush while the command runs, surviving database errors.

        A lost connection (DB restart, terminated backend) is closed and the
        pending lines are kept for the next attempt, at most one per
        _DB_RETRY_SECONDS (or now with ``force``); past 4 batches' worth they
        are dropped and counted, so memory stays bounded. A report that
        disappeared (its task was deleted) ends the run quietly.
        """
        if self.gone or (not force and time.monotonic() < self.db_retry_at):
            return
        try:
            updated = self.flush()
        except DatabaseError as exc:
            self.db_failed(exc)
            if isinstance(exc, IntegrityError):
                self.check_report()
            if len(self.batch) > 4 * app_settings.LOG_BATCH_LINES or (
                self.batch_bytes > 4 * app_settings.LOG_BATCH_BYTES
            ):
                self.lost_lines += len(self.batch)
                self.batch, self.batch_bytes = [], 0
            return
        if updated == 0:
            self.check_report()
        elif self.lost_lines:
            lost, self.lost_lines = self.lost_lines, 0
            self.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "%d log line(s) were lost while the database was unreachable." % lost,
            )

    def db_failed(self, exc: Exception) -> None:
        logger.warning("Run of task %s: database error (%s); retrying.", self.task.pk, exc)
        self.db_retry_at = time.monotonic() + _DB_RETRY_SECONDS
        # Drop a broken connection (server restarted, backend terminated);
        # the next query opens a new one. A working one is kept: "database
        # is locked" breaks nothing, and see _abandon_connections for SQLite.
        for conn in connections.all(initialized_only=True):
            if conn.connection is None or conn.in_atomic_block or not conn.errors_occurred:
                continue
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()

    def check_report(self) -> None:
        """Find out whether the report still exists and is running; set ``gone`` if not."""
        try:
            row = Report.objects.filter(pk=self.report.pk).values_list("finished_datetime", flat=True)
            found = list(row[:1])
        except DatabaseError as exc:
            self.db_failed(exc)
            return
        if not found:
            self.set_gone("deleted")
        elif found[0] is not None:
            self.set_gone("closed")

    def set_gone(self, why: str) -> None:
        if self.gone:
            return
        self.gone = why
        self.batch, self.batch_bytes, self.report_changes = [], 0, {}
        if why == "deleted":
            logger.info(
                "The report of a running task %s was deleted (the task was deleted?): "
                "the run is terminated without a report.",
                self.task.pk,
            )
        else:
            logger.warning(
                "Run of task %s was closed by recovery while still supervised "
                "(heartbeat too old?): the command is terminated.",
                self.task.pk,
            )

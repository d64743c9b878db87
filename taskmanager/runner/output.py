"""Reading a run's child output: ``ChildOutput``, the reading half of :class:`.follow.ChildFollower`.

The child writes on three pipes: fd 1 and fd 2 (raw text, INFO and WARNING
unless level markers say otherwise) and the record pipe (level-tagged records
of :class:`taskmanager.logcapture.RecordWriter`). Lines go to the run's
:class:`.reportlog.ReportLog`; the records whose stream starts with ``_`` are
messages to the supervisor, never log lines: the command's outcome, its
progress, and a reused child's end of run (:mod:`.reuse`).
"""

import os
import select
import time
from datetime import UTC, datetime

from .. import dbclock, logcapture, progress
from .reportlog import ReportLog


class ChildOutput:
    """What the child wrote, stored in its log; what it told the supervisor, kept in attributes."""

    def __init__(self, log: ReportLog):
        self.log = log
        # Style markers may span lines: one reader per raw stream.
        self.raw_marks = {
            logcapture.STDOUT: logcapture.LevelMarks(),
            logcapture.STDERR: logcapture.LevelMarks(),
        }
        #: The child's outcome message ("exception: ValueError"), if it sent one.
        self.outcome: str | None = None
        # A progress number was too large (noted once in the log).
        self.progress_clamped = False
        #: A reused child's exit code for the run, sent on its record pipe (:mod:`.reuse`).
        self.run_end: int | None = None
        # The child's pidfd while it is followed (readable once the child exited).
        self.exit_fd: int | None = None

    def read_fd(self, fd, stream, buffers, records, sel) -> None:
        try:
            data = os.read(fd, logcapture.READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            sel.unregister(fd)
            os.close(fd)
            self.emit(stream, buffers[fd].close())
            return
        self.emit(stream, buffers[fd].feed(data))
        if len(data) < logcapture.SMALL_READ and self.run_end is None:
            # A trickle: let lines gather before the next read (waking up for every line
            # costs both processes more than the line; the pause is far below what a reader
            # sees). It ends early when the child exits (its pidfd turns readable). Never
            # after a reused child's end of run: it flushed its output before that record,
            # and waits for the next run (its pidfd would not turn readable).
            if self.exit_fd is None:
                time.sleep(logcapture.READ_PAUSE)
            else:
                select.select([self.exit_fd], [], [], logcapture.READ_PAUSE)

    def emit(self, stream: str | None, lines: list[str]) -> None:
        """Store lines read from the pipe of ``stream`` (None: the record pipe)."""
        if stream is None:
            self.emit_records(lines)
        else:
            self.emit_raw(stream, lines)

    def emit_raw(self, stream: str, lines: list[str]) -> None:
        """Store lines of fd 1 (INFO) or fd 2 (WARNING), stamped with the time they were read."""
        if not lines:
            return
        level = logcapture.INFO if stream == logcapture.STDOUT else logcapture.WARNING
        marks = self.raw_marks[stream]
        now = time.time_ns() // 1000
        for line in lines:
            if marks.open is None and not logcapture.has_marks(line):
                self.log.add_line(level, stream, line, now)
            else:
                lvl, line = marks.split(line, level)
                self.log.add_line(lvl, stream, line, now)

    def emit_records(self, lines: list[str]) -> None:
        """Store the records of the record pipe; act on the messages to the supervisor."""
        for record in logcapture.decode_records(lines):
            try:
                ts, level, stream, text = record
            except (TypeError, ValueError):
                continue
            if (
                type(stream) is not str
                or type(text) is not str
                or type(level) is not int
                or type(ts) is not int
            ):
                continue  # not written by logcapture.RecordWriter
            if stream.startswith("_"):
                if stream == logcapture.OUTCOME_STREAM:
                    self.outcome = text
                elif stream == logcapture.RUN_END_STREAM:
                    try:
                        self.run_end = int(text)
                    except ValueError:
                        self.run_end = 1
                elif stream == progress.PROGRESS_STREAM:
                    # Only the latest update matters; it goes out with the next flush.
                    changes = progress.parse_record(text)
                    if changes and progress.clamp(changes) and not self.progress_clamped:
                        self.progress_clamped = True
                        self.log.add_line(
                            logcapture.WARNING,
                            logcapture.SYSTEM,
                            "A progress number of the command is larger than %d; it is shown as %d."
                            % (progress.MAX_VALUE, progress.MAX_VALUE),
                        )
                    if changes:
                        # The child's stamp is this machine's clock; the admin compares it with
                        # the run's start, on the database's clock.
                        stamp = (
                            dbclock.from_local(datetime.fromtimestamp(ts / 1e6, UTC)) if ts else dbclock.now()
                        )
                        self.log.report_changes.update(changes, progress_at=stamp)
                continue
            self.log.add_line(level, stream, text, ts)

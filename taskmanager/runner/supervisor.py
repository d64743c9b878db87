"""Supervising one claimed run: ``Supervisor(task, report).run()``.

Marks the report as supervised by this process (:func:`current_report_id`,
read by recovery), refuses a run that cannot run, forks the child if the
claim did not, then wires the parts: the child's output goes through a
:class:`.follow.ChildFollower` into a :class:`.reportlog.ReportLog`, and
:mod:`.outcome` records the end.
"""

import logging
import time

from .. import arguments, callargs, logcapture, policy
from ..conf import app_settings
from ..models import EndKind, Report, Task
from . import reuse
from .child import Child, become_subreaper
from .follow import ChildFollower
from .outcome import End, RunEnd, end_reason
from .reportlog import ReportLog

logger = logging.getLogger("taskmanager.runner")

# The report this process supervises right now, if any. Recovery reads it: a
# running report whose supervisor is this very process, while this process
# supervises nothing (or another run), was orphaned.
_current_report_id: int | None = None


def current_report_id() -> int | None:
    """Return the pk of the report this process is supervising now, or None."""
    return _current_report_id


class Supervisor:
    """Fork the command's child process and follow it until it ends."""

    def __init__(self, task: Task, report: Report):
        self.task = task
        self.report = report
        self.log = ReportLog(task, report)
        self.follower = ChildFollower(
            self.log, task.timeout or app_settings.DEFAULT_TIMEOUT, subreaper=become_subreaper()
        )
        # perf_counter() at the end of each phase (see runner._log_timing).
        self.marks: dict[str, float] = dict(getattr(report, "timing_marks", None) or {})

    def run(self) -> None:
        """Run the command to its end and record the outcome; never leave a child behind."""
        global _current_report_id
        _current_report_id = self.report.pk
        try:
            self._run()
        finally:
            _current_report_id = None

    def _run(self) -> None:
        task = self.task
        child = getattr(self.report, "child", None)
        if child is None:
            try:
                argv = callargs.argv_of(task.command, task.arguments_for(self.report.trigger))
            except arguments.ArgumentsError as exc:
                self.log.add_line(logcapture.ERROR, logcapture.SYSTEM, "Invalid arguments: %s" % exc)
                return self.finish(End(EndKind.NOT_RUN, "invalid arguments"))
            if not task.command.active:
                self.log.add_line(
                    logcapture.ERROR,
                    logcapture.SYSTEM,
                    "The command %s is no longer active: activate it in Commands to run this task."
                    % task.command.name,
                )
                return self.finish(End(EndKind.NOT_RUN, "command inactive"))
            refusal = getattr(self.report, "refusal", None)
            if refusal is None and not hasattr(self.report, "refusal"):
                refusal = policy.claim_refusal(task, self.report.trigger)
            if refusal:
                self.log.add_line(
                    logcapture.ERROR, logcapture.SYSTEM, "Refused, nothing was run: %s" % refusal
                )
                return self.finish(End(EndKind.NOT_RUN, "not allowed"))
        if self.report.trigger == Report.Trigger.RECOVERY:
            self.log.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "This run's spool entry had been lost; the recovery spooled it again.",
            )
        spool_error = getattr(self.report, "spool_error", None)
        if spool_error:
            self.log.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "The next run could not be spooled (%s); recovery will retry." % spool_error,
            )
        if child is None:
            child = self.fork(argv)
        try:
            status = self.follower.follow(child)
        except Exception as exc:  # noqa: BLE001 - follow() has killed and reaped the child
            logger.exception("Supervising the run of task %s failed", task.pk)
            self.log.add_line(
                logcapture.ERROR,
                logcapture.SYSTEM,
                "The supervisor failed (%s: %s); the command was killed." % (type(exc).__name__, exc),
            )
            return self.finish(End(EndKind.CRASHED, "supervisor error"))
        self.marks["exited"] = time.perf_counter()
        end = end_reason(status, self.follower)
        try:
            self.finish(end)
        except BaseException:
            if self.follower.kept:
                reuse.retire(child)  # never a waiting child whose run's end is unrecorded
            raise
        reuse.after_run(child, end, self.follower)

    def fork(self, argv: list[str]) -> "Child":
        """Fork the command's child for a report claimed without ``prefork``; record it; release it."""
        child = reuse.child_for(self.task, argv)
        self.marks["forked"] = time.perf_counter()
        self.report.pid = child.pid
        self.report.pid_started = child.started
        self.log.report_changes.update(pid=child.pid, pid_started=child.started)
        # Recorded before the command starts: if this process dies, recovery needs the group.
        self.log.safe_flush(force=True)
        child.release(self.report.run_marker(), argv)
        self.marks["released"] = time.perf_counter()
        return child

    def finish(self, end: End) -> None:
        """Record the run's end (:class:`.outcome.RunEnd`)."""
        RunEnd(self.task, self.report, self.log, self.marks).finish(end)

"""Following a run's child until it exits: ``ChildFollower``.

The selector loop over the child's three pipes (fd 1, fd 2, the record pipe)
and the fd that tells its exit (:meth:`.child.Child.exit_fd`); the flush and heartbeat ticks; the stop poll (a stop request,
or the report deleted or closed); the timeout, SIGTERM then SIGKILL after the
grace period; the fence (SIGKILL when the heartbeat went unrenewed too long,
:mod:`taskmanager.fencing`); once the child has exited, the kill of what it
left behind (its group, and the orphans re-parented to this subreaper or to
the fork server).
"""

import logging
import os
import selectors
import signal
import time

from django.db import DatabaseError

from .. import dbclock, logcapture
from ..conf import app_settings
from ..models import Report
from . import reuse
from .child import Child, kill_group
from .output import ChildOutput
from .reportlog import ReportLog

logger = logging.getLogger("taskmanager.runner")

# Selector key data of the child's exit fd (readable once the child has exited).
_EXITED = object()


def seconds_text(value) -> str:
    """Format a number of seconds without a useless ".0" (2 -> "2", 2.5 -> "2.5")."""
    return "%g" % value


class ChildFollower(ChildOutput):
    """Read a run's child output into its :class:`ReportLog`; enforce stop, timeout and fencing.

    After :meth:`follow`, ``stop_user``, ``timed_out``, ``fenced`` and ``outcome`` say how it ended.
    """

    def __init__(self, log: ReportLog, timeout, subreaper: bool):
        super().__init__(log)
        self.report = log.report
        self.stop_user: str | None = None
        self.timed_out = False
        self.fenced = False  # killed: its heartbeat went unrenewed (taskmanager.fencing)
        self.kill_at: float | None = None
        self.timeout = timeout
        self.subreaper = subreaper
        self.terminating = False
        #: Whether the child is alive after follow(), its pipes open, ready for another run.
        self.kept = False

    def follow(self, child: Child) -> int:
        """Read the child's output until it exits; return its wait status.

        Every LOG_FLUSH_SECONDS pending lines are written, every
        STOP_POLL_SECONDS the report is checked for a stop request (or for
        having been deleted or closed), and the timeout is enforced. When the
        child has exited, what it left behind is killed. If anything here
        raises, the child's group is killed and reaped before the exception
        propagates: a child is never left unsupervised.
        """
        pid, fds = child.pid, child.fds
        sel = selectors.DefaultSelector()
        buffers = {}
        records = logcapture.LineBuffer()
        for fd, stream in fds.items():
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, stream)
            # Records are never cut: their size is bounded by the child.
            buffers[fd] = logcapture.LineBuffer(
                logcapture.MAX_RECORD_BYTES if stream is None else logcapture.MAX_LINE_CHARS
            )
        exit_fd = child.exit_fd()
        if exit_fd is not None:
            # Wakes the loop the moment the child exits (no polling delay).
            sel.register(exit_fd, selectors.EVENT_READ, _EXITED)
        self.exit_fd = exit_fd
        started = time.monotonic()
        last_flush = last_poll = last_beat = started
        status = None
        try:
            while True:
                wait = self.next_due(started, last_flush, last_poll) - time.monotonic()
                for key, _ in sel.select(timeout=min(max(wait, 0.0), 0.2)):
                    if key.data is not _EXITED:
                        self.read_fd(key.fd, key.data, buffers, records, sel)
                if self.run_end is not None:
                    # A reused child ended its run and waits for the next:
                    # its exit code as the wait status an exit would give.
                    status = (self.run_end & 0xFF) << 8
                    break
                now = time.monotonic()
                status = child.poll()
                if status is not None:
                    break
                if now - last_flush >= app_settings.LOG_FLUSH_SECONDS:
                    if now - last_beat >= app_settings.HEARTBEAT_SECONDS:
                        # The database's now, in the flush's UPDATE: other nodes compare it.
                        self.log.report_changes["heartbeat"] = dbclock.DbNow()
                        last_beat = now
                    self.log.safe_flush()
                    last_flush = now
                    child.reap_orphans(self.subreaper)  # exited orphans hold no pid until the end
                ending = self.stop_user is not None or self.timed_out or self.log.gone
                if not ending and now - last_poll >= app_settings.STOP_POLL_SECONDS:
                    last_poll = now
                    self.poll_stop(pid)
                    ending = self.stop_user is not None or self.log.gone
                if self.log.gone and not self.terminating:
                    self.terminate(pid)
                if not self.fenced and self.log.lease.expired(now):
                    self.fence(pid, now)
                if self.timeout and not ending and now - started > self.timeout:
                    self.timed_out = True
                    self.log.add_line(
                        logcapture.WARNING,
                        logcapture.SYSTEM,
                        "Timed out after %s seconds: terminating the command." % seconds_text(self.timeout),
                    )
                    self.terminate(pid)
                if self.kill_at is not None and now >= self.kill_at:
                    kill_group(pid, signal.SIGKILL)
                    self.kill_at = None
        finally:
            self.exit_fd = None
            if exit_fd is not None:
                sel.unregister(exit_fd)
            child.close_exit_fd()
            # (status is set just before the loop's break: no exception is on its way)
            if not (
                self.run_end is not None and status is not None and self.keep_child(pid, sel, fds, buffers)
            ):
                self.end_child(child, status is None or self.run_end is not None, sel, buffers, records)
        return status

    def end_child(self, child: Child, alive: bool, sel, buffers: dict, records) -> None:
        """Kill what the run left (the child too when ``alive``), read the pipes to their end, close them."""
        # Whatever the command left behind goes too: (in a spooler) its
        # orphans, counted while alive, then what is left of its group.
        pid, fds = child.pid, child.fds
        if alive:
            kill_group(pid, signal.SIGKILL)
            child.wait()
        self.sweep_orphans(child)
        kill_group(pid, signal.SIGKILL)
        child.reap_orphans(self.subreaper)
        deadline = time.monotonic() + 1.0
        while sel.get_map() and time.monotonic() < deadline:
            events = sel.select(timeout=0.1)
            if not events:
                break
            for key, _ in events:
                self.read_fd(key.fd, key.data, buffers, records, sel)
        for fd in list(sel.get_map()):
            sel.unregister(fd)
            os.close(fd)
            self.emit(fds[fd], buffers[fd].close())
        sel.close()

    def keep_child(self, pid: int, sel, fds: dict, buffers: dict) -> bool:
        """After a reused child's run: keep it (pipes drained, left open) unless the run left something.

        Left behind: a process (:func:`.reuse.left_behind`; killed, with the
        child, by the caller), a thread, a closed pipe, or a stop, time-out
        or fence under way.
        """
        if self.terminating or self.stop_user is not None:
            return False
        if len(sel.get_map()) < len(fds):
            return False  # a pipe reached its end and its read end is closed: the child cannot serve again
        if reuse.thread_running(pid):
            return False  # it would go on writing during the next run (see reuse.thread_running)
        leftover = reuse.left_behind(pid, self.subreaper, self.log.report.run_marker())
        if leftover:
            self.log.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "%d process(es) started by the command outlived it and were killed; "
                "the next run gets a new child process." % leftover,
            )
            return False
        # The child flushed fd 1 and fd 2 before it sent its end: what the run
        # wrote is in the pipes now. Read it, and leave the pipes open.
        for fd in list(sel.get_map()):
            while True:
                try:
                    data = os.read(fd, logcapture.READ_SIZE)
                except BlockingIOError:
                    break
                if not data:
                    break
                self.emit(fds[fd], buffers[fd].feed(data))
            sel.unregister(fd)
            self.emit(fds[fd], buffers[fd].close())
        sel.close()
        self.kept = True
        return True

    def fence(self, pid: int, now: float) -> None:
        """SIGKILL the command at once: other nodes may close the run and start the next one."""
        self.fenced = self.terminating = True
        kill_group(pid, signal.SIGKILL)
        text = self.log.lease.message(now)
        logger.error("Run of task %s: %s", self.log.task.pk, text)
        self.log.add_line(logcapture.ERROR, logcapture.SYSTEM, text)

    def next_due(self, started: float, last_flush: float, last_poll: float) -> float:
        """Return the monotonic time of the loop's next timed duty (flush, poll, timeout, SIGKILL)."""
        due = [last_flush + app_settings.LOG_FLUSH_SECONDS]
        if not (self.stop_user is not None or self.timed_out or self.log.gone):
            due.append(last_poll + app_settings.STOP_POLL_SECONDS)
            if self.timeout:
                due.append(started + self.timeout)
        if self.kill_at is not None:
            due.append(self.kill_at)
        return min(due)

    def sweep_orphans(self, child: Child) -> int:
        """Kill and reap the live orphans of the run's ``child``; log and return how many."""
        killed = child.sweep_orphans(self.subreaper)
        if killed:
            self.log.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "%d process(es) started by the command outlived it and were killed." % killed,
            )
        return killed

    def poll_stop(self, pid: int) -> None:
        """Terminate the child if a stop was requested or the report was deleted or closed."""
        try:
            rows = list(
                Report.objects.filter(pk=self.report.pk).values_list(
                    "stop_requested_at", "stopped_by__username", "finished_datetime"
                )[:1]
            )
        except DatabaseError as exc:
            self.log.db_failed(exc)
            return
        if not rows:
            self.log.set_gone("deleted")
        elif rows[0][2] is not None:
            self.log.set_gone("closed")
        elif rows[0][0] is not None:
            self.stop_user = rows[0][1] or "?"
            self.log.add_line(logcapture.INFO, logcapture.SYSTEM, "Stop requested by %s." % self.stop_user)
        else:
            return
        self.terminate(pid)

    def terminate(self, pid: int) -> None:
        """SIGTERM the child's process group; SIGKILL follows after STOP_GRACE_SECONDS."""
        self.terminating = True
        kill_group(pid, signal.SIGTERM)
        self.kill_at = time.monotonic() + app_settings.STOP_GRACE_SECONDS

"""The supervisor's handle on a run's child process: fork, release, cancel, reap.

:meth:`Child.spawn` forks it (the child runs :func:`.child_main.child_main`);
its start time is read from ``CLOCK_BOOTTIME`` around the fork; in a uWSGI
spooler this process becomes the child subreaper of the runs' orphans; the
management machinery is warmed up once per process before the first fork.
"""

import io
import json
import logging
import os
import signal
import socket
import sys
import time

from .. import logcapture, processes, uwsgi_runtime
from .child_main import child_main

logger = logging.getLogger("taskmanager.runner")


def reap(pid: int) -> None:
    """Wait for a child that was sent SIGKILL (blocks until it is gone)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def pidfd_open(pid: int) -> int | None:
    """Return a pidfd of ``pid`` (readable once it has exited), or None where Linux has none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def kill_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the child's process group, and to the child if it left the group."""
    processes.kill_group(pid, sig)
    try:
        moved = os.getpgid(pid) != pid  # the command called setsid() or setpgid()
    except (ProcessLookupError, PermissionError):
        return
    if moved:
        processes.kill(pid, sig)


class Child:
    """The forked child process of one run, and the supervisor's ends of its pipes.

    :meth:`spawn` forks it; it prepares itself (process group, death signal,
    signals, file descriptors, working directory, log capture) and then waits
    for :meth:`release`, which hands it the run's ``TASKMANAGER_RUN`` marker,
    before it imports and runs the command; :meth:`cancel` makes it leave
    without running anything. So the child can be forked before the run is
    claimed (its pid goes into the report in the claim's own commit) and no
    code of the command runs for a claim that was lost.
    """

    def __init__(self, pid: int, fds: dict, go: socket.socket, started: float | None, reuse: bool = False):
        self.pid = pid
        #: Read ends of the child's fd 1, fd 2 and record pipe -> stream (None: records).
        self.fds = fds
        self.go = go
        self.started = started
        #: Whether the child waits for another run after each one (:mod:`.reuse`).
        self.reuse = reuse
        #: The command it runs (app, name), and how many runs it was released for.
        self.command_key: tuple[str, str] | None = None
        self.runs = 0

    @classmethod
    def spawn(cls, task, argv: list[str], reuse: bool = False) -> "Child":
        """Fork the child that will run ``task``'s command with ``argv``; it waits for release().

        With ``reuse`` the child, after each run, says so on its record pipe
        and waits for the next release instead of exiting (:mod:`.reuse`).
        """
        become_subreaper()
        _warm_up()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rec_r, rec_w = os.pipe()
        for fd in (out_w, err_w, rec_w):
            logcapture.enlarge_pipe(fd)
        # A socket pair rather than a pipe: sending to a child that died
        # fails with an error (MSG_NOSIGNAL), never with SIGPIPE.
        go, go_child = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        pid = os.fork()
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            os.close(out_r)
            os.close(err_r)
            os.close(rec_r)
            go.close()
            child_main(task, argv, out_w, err_w, rec_w, parent=parent, go=go_child.detach(), reuse=reuse)
        go_child.close()
        for fd in (out_w, err_w, rec_w):
            os.close(fd)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first
        fds = {out_r: logcapture.STDOUT, err_r: logcapture.STDERR, rec_r: None}
        child = cls(pid, fds, go, _start_time_of_child(pid, before, after), reuse=reuse)
        child.command_key = (task.command.app_name, task.command.name)
        return child

    def release(self, marker: str, argv: list[str] | None = None) -> None:
        """Let the child run the command (with ``argv``, else the spawn's), ``marker`` in its environment."""
        self.runs += 1
        message = json.dumps({"marker": marker, "argv": argv}).encode() + b"\n"
        try:
            self.go.sendall(message, socket.MSG_NOSIGNAL)
        except OSError:
            pass  # the child is gone already: follow() reads its end
        if not self.reuse:
            self.go.close()

    def cancel(self) -> None:
        """Kill the child (it has not run anything of the command), reap it, close the pipes."""
        self.go.close()
        processes.kill_group(self.pid, signal.SIGKILL)
        processes.kill(self.pid, signal.SIGKILL)
        reap(self.pid)
        for fd in self.fds:
            os.close(fd)
        self.fds = {}


def _start_time_of_child(pid: int, before: int, after: int) -> float | None:
    """Return the start time of the child ``pid`` just forked, as ``processes.start_time`` gives it.

    ``before`` and ``after`` are ``CLOCK_BOOTTIME`` (ns) read just before and
    just after the fork. Linux stamps a new process with that clock during
    the fork and ``/proc`` shows it in clock ticks, rounded down: when both
    reads fall in the same tick, that tick is the start time, and reading
    another process's ``/proc/<pid>/stat`` (a fifth of a millisecond) is spared.
    """
    per_tick = 1_000_000_000 // _CLOCK_TICKS
    if before // per_tick == after // per_tick:
        return float(before // per_tick)
    return processes.start_time(pid)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Whether this process is a child subreaper, by pid (see become_subreaper).
_subreaper: dict[int, bool] = {}


def become_subreaper() -> bool:
    """In a uWSGI spooler, make this process the reaper of the runs' orphans (once per process).

    Orphans of a run (a subprocess that called setsid and outlived the
    command) then re-parent to this spooler process, which kills them when
    the run ends. Only in a spooler: it has no other children.
    """
    pid = os.getpid()
    if pid not in _subreaper:
        _subreaper.clear()
        _subreaper[pid] = uwsgi_runtime.in_spooler() and processes.set_child_subreaper()
    return _subreaper[pid]


# The pid of the process whose Django management machinery is warm (see _warm_up).
_warm_pid: int | None = None


def _warm_up() -> None:
    """Once per process, build before forking what each child would otherwise build again.

    Django's management machinery (its argument parser, the translations of
    its help texts, their regular expressions) fills caches on first use.
    Filled once here, every forked child finds them ready instead of paying
    for them in each run. Only Django's code runs here, through a command that
    does nothing: the task's command is imported and run by the child alone.
    """
    global _warm_pid
    if _warm_pid == os.getpid():
        return
    _warm_pid = os.getpid()
    # Deferred: needed once per process, just before its first fork.
    from django.core.management import call_command
    from django.core.management.base import BaseCommand

    class Nothing(BaseCommand):
        def handle(self, *args, **options):
            pass

    sink = io.StringIO()
    try:
        call_command(Nothing(), stdout=sink, stderr=sink)
        processes.python_executable()  # cached: the children use it (child_main)
    except Exception:  # noqa: BLE001 - only a speed-up: the children do it themselves
        logger.debug("Warming up the management machinery failed", exc_info=True)

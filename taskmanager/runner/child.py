"""The supervisor's handle on a run's child process: fork, release, cancel, wait, sweep.

:meth:`Child.spawn` has it forked (the child runs :func:`.child_main.child_main`):
in a uWSGI spooler by the spooler's fork server (:mod:`.forkserver`), else by
this process itself. Either way :class:`Child` offers the same handle: the
read ends of its pipes, its release socket, a file descriptor that turns
readable when it exits, its wait status, and the count of its orphans killed
at its end. In a uWSGI spooler this process is the child subreaper of the
runs' orphans (and of the fork server's, should it die); the management
machinery is warmed up once per forking process.
"""

import json
import logging
import os
import signal
import socket
import sys
import time

from .. import logcapture, processes, uwsgi_runtime
from ..conf import app_settings
from . import orphans
from .child_main import CommandName, child_main
from .forkserver import ForkServer, ForkServerLost, ForkServerNotNow
from .prefork import let_go_of_sqlite, reap, start_time_of_child, warm_up

logger = logging.getLogger("taskmanager.runner")


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

    def __init__(
        self,
        pid: int,
        fds: dict,
        go: socket.socket,
        started: float | None,
        server: ForkServer | None = None,
        reuse: bool = False,
    ):
        self.pid = pid
        #: Read ends of the child's fd 1, fd 2 and record pipe -> stream (None: records).
        self.fds = fds
        self.go = go
        self.started = started
        #: The fork server that forked it and reports its exit; None: a child of this process.
        self.server = server
        #: Orphans the fork server killed when the child exited (None: not known).
        self.swept: int | None = None
        self._pidfd: int | None = None
        #: Whether the child waits for another run after each one (:mod:`.reuse`).
        self.reuse = reuse
        #: The command it runs, and how many runs it was released for.
        self.command_key: CommandName | None = None
        self.runs = 0
        #: What it serves runs of (:func:`.reuse.key`; set by :func:`.reuse.child_for`).
        self.reuse_key: tuple | None = None

    @classmethod
    def spawn(cls, task, argv: list[str], reuse: bool = False) -> "Child":
        """Fork the child that will run ``task``'s command with ``argv``; it waits for release().

        With ``reuse`` the child, after each run, says so on its record pipe
        and waits for the next release instead of exiting (:mod:`.reuse`);
        such a child is forked by this process, never by a fork server.
        """
        # Only for a spooler subreaper: should the fork server die, its orphans come
        # here. Found (or started) before the run's pipes exist: a fork server
        # started later would hold copies of their write ends for its whole life.
        server = _fork_server(task) if become_subreaper() and fork_server_wanted() else None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rec_r, rec_w = os.pipe()
        for fd in (out_w, err_w, rec_w):
            logcapture.enlarge_pipe(fd)
        # A socket pair rather than a pipe: sending to a child that died
        # fails with an error (MSG_NOSIGNAL), never with SIGPIPE.
        go, go_child = socket.socketpair()
        fds = {out_r: logcapture.STDOUT, err_r: logcapture.STDERR, rec_r: None}
        command = CommandName.of(task)
        try:
            if server is not None:
                try:
                    pid, started = server.spawn(command, argv, [out_w, err_w, rec_w, go_child.fileno()])
                    return cls._made(task, pid, fds, go, started, server)
                # Lost (ForkServerLost), an argv larger than a datagram (OSError): fork here.
                except Exception as exc:  # noqa: BLE001 - the run must not fail for its fork server
                    logger.warning(
                        "taskmanager: the fork server could not fork the run (%s): forking it here", exc
                    )
            # A reused child outlives its run: it must inherit nothing of an SQLite file.
            if reuse and not let_go_of_sqlite():
                reuse = False
            warm_up()
            sys.stdout.flush()
            sys.stderr.flush()
            parent = os.getpid()
            before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            pid = os.fork()
            after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                for fd in fds:
                    os.close(fd)
                go.close()
                child_main(
                    command, argv, out_w, err_w, rec_w, parent=parent, go=go_child.detach(), reuse=reuse
                )
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # the child did it first
            return cls._made(task, pid, fds, go, start_time_of_child(pid, before, after), None, reuse)
        finally:
            go_child.close()
            for fd in (out_w, err_w, rec_w):
                os.close(fd)

    @classmethod
    def _made(cls, task, pid, fds, go, started, server, reuse=False) -> "Child":
        child = cls(pid, fds, go, started, server, reuse)
        child.command_key = CommandName.of(task)
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
        self.wait()
        for fd in self.fds:
            os.close(fd)
        self.fds = {}

    def exit_fd(self) -> int | None:
        """A file descriptor that turns readable when the child has exited (None: none to watch).

        The fork server's socket (its exit message), else a pidfd of the child.
        """
        if self.server is not None:
            return self.server.fileno() if self.server.alive else None
        if self._pidfd is None:
            self._pidfd = pidfd_open(self.pid)
        return self._pidfd

    def close_exit_fd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def poll(self) -> int | None:
        """Return the child's wait status if it has exited, else None; never wait.

        Raise :class:`.forkserver.ForkServerLost` if its fork server died.
        """
        if self.server is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            return status if done else None
        return self._exited(self.server.poll(self.pid))

    def wait(self) -> int | None:
        """Wait until the child (sent SIGKILL) is gone; return its wait status if known."""
        if self.server is not None and self.server.alive:
            try:
                return self._exited(self.server.wait(self.pid))
            except ForkServerLost:
                pass  # the child died with it and re-parented here (a subreaper)
        reap(self.pid)
        return None

    def _exited(self, message: dict | None) -> int | None:
        if message is None:
            return None
        self.swept = message.get("swept", 0)
        return message["status"]

    def sweep_orphans(self, subreaper: bool) -> int:
        """Kill and reap the run's orphans still alive; return how many (the fork server's count)."""
        if self.swept is not None:
            return self.swept
        if not subreaper or self.started is None:
            return 0
        # A child of this process, or one whose fork server died: its orphans are here.
        return orphans.sweep(self.pid, self.started)

    def reap_orphans(self, subreaper: bool) -> None:
        """While the run goes on, reap its orphans that exited (the fork server does it itself)."""
        if subreaper and (self.server is None or not self.server.alive):
            orphans.reap_exited(self.pid)


def prepare_spooler() -> None:
    """At a spooler process's start: become the subreaper, and start the fork server unless turned off.

    Started here rather than at the first run, that run does not pay for it
    (imports, warm-up, its fork: a tenth of a second or more).
    """
    if become_subreaper() and fork_server_wanted():
        _fork_server()


def fork_server_wanted() -> bool:
    """Whether the runs' children come from a fork server: ``FORK_SERVER``, and a fresh child per run.

    With ``RUNS_PER_CHILD`` above 1 the spooler forks the (rare) children
    itself: a reused child outlives its run, and the fork server only learns
    of a child's end when it exits (:mod:`.reuse`).
    """
    return app_settings.FORK_SERVER and app_settings.RUNS_PER_CHILD == 1


def _fork_server(task=None) -> ForkServer | None:
    """Return this spooler's fork server for ``task`` (started if needed: :meth:`ForkServer.serving`), or None to fork here."""
    try:
        return ForkServer.serving(task)
    except ForkServerNotNow:
        return None  # the caller's transaction covers a child forked here (let_go_of_sqlite)
    except Exception:  # noqa: BLE001 - no fork server (fork failed): the supervisor forks
        logger.exception("taskmanager: could not start a fork server: the run's child is forked here")
        return None


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

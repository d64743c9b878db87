"""Everything that runs inside a fork server process (see :mod:`.forkserver`), which never returns.

:func:`serve` prepares the process once (death signal, own process group,
child subreaper, the spooler's database connections dropped unused, the
active commands imported, Django's management machinery warmed up,
``gc.freeze()``), then answers the spooler's requests on its socket until the
spooler closes it or dies:

* When it starts serving, and after reporting a run's exit: fork the next
  spare (:mod:`.spare`), never while a run's child lives, and send the
  spooler ``{"spare": pid, "started": ticks}`` with the spare's socket; the
  spooler hands the next run to the spare itself.
* ``{"took": pid}``: the spooler handed a run to the spare ``pid``; it is
  that run's child from now on (one that exited before this notice came is
  reported at once, its orphans swept). No answer.
* ``{"spawn": [app_name, name], "argv": [...]}`` with four file descriptors
  (the write ends of the child's fd 1, fd 2 and record pipes, and its end of
  the release socket): a run the spooler held no spare for (it had not read
  the announcement yet, or its spare had died). Hand it to the spare if one
  waits, else fork the run's child, which runs
  :func:`.child_main.child_main`; answer ``{"spawned": pid, "started": ticks}``.
* When a run's child exits: reap it, kill and reap its orphans (this process
  is their subreaper), and send ``{"exit": pid, "status": wait status,
  "swept": orphans killed}``; orphans that exit meanwhile are reaped as they
  exit (SIGCHLD wakes the loop). Nothing here touches the database.
"""

import gc
import json
import os
import select
import signal
import socket
import time
from importlib import import_module

from .. import processes
from . import orphans, parsers
from .child_main import CommandName, abandon_connections, child_main
from .childsetup import RESET_SIGNALS, working_dir
from .prefork import leave, print_exception, start_time_of_child, warm_up
from .spare import REQUEST_BYTES, SPAWN_FDS, Spare


def serve(
    sock: socket.socket, spooler: int, commands: list[tuple[str, str]], modules: list[str] = ()
) -> None:
    """Run the fork server of the spooler process ``spooler``; leave through ``os._exit``."""
    code = 1
    try:
        # Dies with its spooler; the run's child dies with this process in turn.
        processes.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != spooler:
            os._exit(code)  # the spooler died before PDEATHSIG was armed
        # Out of the uWSGI instance's group: a Ctrl-C or a killpg of the
        # instance reaches the spooler, and this process follows it (PDEATHSIG).
        os.setpgid(0, 0)
        for sig in RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        processes.set_child_subreaper()
        abandon_connections()
        prepare(commands, modules)
        _Server(sock, os.getpid()).loop()
        code = 0
    except BaseException:  # noqa: BLE001 - the fork server must always leave through os._exit
        print_exception()
    finally:
        leave(code)


def prepare(commands: list[tuple[str, str]], modules: list[str] = ()) -> None:
    """Import the modules of ``commands`` and ``modules``, build the commands' parsers, warm up Django's management machinery, freeze the heap.

    Every child forked from here finds them ready instead of importing them
    again, or building the command's argument parser (:mod:`.parsers`).
    ``modules`` are those of the django.tasks functions (their ``@task``
    decorators made the ``Task`` objects a run imports by path). A module that fails to import is left to the child, which
    imports it again and reports the error in the run's log. ``gc.freeze()``
    moves every object made so far out of the collector's reach: a
    collection in a child then does not write on (and copy) the pages it
    shares with this process.
    """
    for app_name, name in commands:
        try:
            import_module("%s.management.commands.%s" % (app_name, name))
        except BaseException:  # noqa: BLE001 - reported by the child of a run of it
            continue
        parsers.prebuild(CommandName(app_name, name))
    for module in modules:
        try:
            import_module(module)
        except BaseException:  # noqa: BLE001 - reported by the child of a run of its function
            continue
    warm_up()
    gc.collect()
    gc.freeze()


class _Server:
    """The request loop: spawn children, reap them and their orphans, report their exits."""

    def __init__(self, sock: socket.socket, me: int):
        self.sock = sock
        self.me = me
        #: The children's working directory (the settings are this process's for its whole life).
        self.cwd = working_dir()
        #: pid -> start time of each run's child not yet reported.
        self.children: dict[int, float | None] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        # What the children get back (uWSGI's disposition), and a wake-up on every exit.
        self.inherited_chld = signal.getsignal(signal.SIGCHLD)
        signal.signal(signal.SIGCHLD, _ignore)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        #: The waiting spare child, and whether to fork one when no run's child lives (see spare.py).
        self.spare: Spare | None = None
        self.want_spare = True
        #: (pid, start time, wait status) of the last spare reaped before a notice that it was taken.
        self.dead_spare: tuple[int, float | None, int] | None = None

    def loop(self) -> None:
        """Serve until the spooler closes its end (or dies: then PDEATHSIG ends this process)."""
        while True:
            if self.want_spare and self.spare is None and not self.children:
                self.want_spare = False
                try:
                    self.spare = Spare.fork(self.me, self.cwd, self.in_child)
                except OSError:
                    pass  # no fork now (EAGAIN, ENOMEM): the next run is forked on request
                else:
                    self.spare.announce(self.sock)
            ready, _, _ = select.select([self.sock, self.wake_r], [], [])
            if self.wake_r in ready:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                self.reap()
            if self.sock in ready:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, REQUEST_BYTES, SPAWN_FDS)
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                if not data:
                    return
                self.handle(data, fds)

    def handle(self, data: bytes, fds: list[int]) -> None:
        request = json.loads(data)
        if "took" in request and not fds:
            self.taken(request["took"])
        elif "spawn" in request and len(fds) == SPAWN_FDS:
            pid, started = self.hand_over(data, fds)
            if pid is None:
                pid, started = self.spawn(CommandName(*request["spawn"]), request["argv"], fds)
            self.send({"spawned": pid, "started": started})
        else:
            for fd in fds:
                os.close(fd)
            self.send({"error": "unknown request"})

    def hand_over(self, data: bytes, fds: list[int]) -> tuple[int | None, float | None]:
        """Give a requested run to the spare, if one waits; return its pid and start time (None: fork it now).

        The spooler asks only when it holds no spare: this one's announcement
        is still on its way to it, and it learns from the answer that the
        spare is taken (:meth:`.forkserver.ForkServer.spawn`).
        """
        spare, self.spare = self.spare, None
        if spare is None or not spare.hand_over(data, fds):
            return None, None
        for fd in fds:
            os.close(fd)
        self.children[spare.pid] = spare.started
        return spare.pid, spare.started

    def taken(self, pid: int) -> None:
        """The spooler handed a run to the spare ``pid``: it is the run's child now (reported at once if it exited)."""
        if self.spare is not None and self.spare.pid == pid:
            self.spare.sock.close()
            self.children[pid] = self.spare.started
            self.spare = None
        elif self.dead_spare is not None and self.dead_spare[0] == pid:
            # It ran and exited before this notice: reaped as a spare that
            # died waiting. Reported now, as a run's child, its orphans swept.
            (pid, started, status), self.dead_spare = self.dead_spare, None
            self.exited(pid, started, status)

    def in_child(self) -> None:
        """In a child forked from here (a run's, a spare): drop the fork server's own ends and handlers."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, self.inherited_chld or signal.SIG_DFL)
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def spawn(self, command: CommandName, argv: list[str], fds: list[int]) -> tuple[int, float | None]:
        """Fork the run's child; return its pid and start time."""
        out_w, err_w, rec_w, go = fds
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        pid = os.fork()
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            self.in_child()
            child_main(command, argv, out_w, err_w, rec_w, parent=self.me, go=go, cwd=self.cwd)
        for fd in fds:
            os.close(fd)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first
        started = start_time_of_child(pid, before, after)
        self.children[pid] = started
        return pid, started

    def reap(self) -> None:
        """Reap every exited child; report a run's child, after killing its orphans."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid in self.children:
                self.exited(pid, self.children.pop(pid), status)
            elif self.spare is not None and pid == self.spare.pid:
                # Died waiting (the next run is forked on request), unless the
                # spooler handed it a run whose notice is still on its way.
                self.spare.sock.close()
                self.dead_spare = (pid, self.spare.started, status)
                self.spare = None

    def exited(self, pid: int, started: float | None, status: int) -> None:
        """Report the exit of a run's child, after killing its orphans."""
        swept = self.sweep(pid, started) if started is not None and not self.children else 0
        self.send({"exit": pid, "status": status, "swept": swept})
        self.want_spare = True  # forked by loop() once no run's child lives

    def sweep(self, pid: int, started: float) -> int:
        """Kill and reap the live children started since ``started`` (the orphans of the run of ``pid``); return how many.

        Called when the run's child has exited and no other run's child
        lives (a spooler runs one task at a time): every other child of this
        subreaper is an orphan of that run. Killing one may orphan its own
        children, which then re-parent here: a few rounds.
        """
        killed = orphans.sweep(pid, started)
        orphans.reap_exited(pid)  # those that had exited already are reaped, not counted
        return killed

    def send(self, message: dict) -> None:
        try:
            self.sock.send(json.dumps(message).encode())
        except OSError:
            pass  # the spooler is gone: PDEATHSIG ends this process


def _ignore(signum, frame) -> None:
    """SIGCHLD handler: nothing; its wake-up fd wakes the loop."""

"""Everything that runs inside a fork server process (see :mod:`.forkserver`), which never returns.

:func:`serve` prepares the process once (death signal, own process group,
child subreaper, the spooler's database connections dropped unused, the
active commands imported, Django's management machinery warmed up,
``gc.freeze()``, the heap moved into huge pages by :mod:`.hugepages`), then
answers the spooler's requests on its socket until the spooler closes it or
dies:

* ``{"spawn": [app_name, name], "argv": [...]}`` with four file descriptors
  (the write ends of the child's fd 1, fd 2 and record pipes, and its end of
  the release socket): hand them to the waiting spare child (:mod:`.spare`),
  else fork the run's child, which runs :func:`.child_main.child_main`;
  answer ``{"spawned": pid, "started": ticks}``.
* When a run's child exits: reap it, kill and reap its orphans (this process
  is their subreaper), and send ``{"exit": pid, "status": wait status,
  "swept": orphans killed}``; orphans that exit meanwhile are reaped as they
  exit (SIGCHLD wakes the loop). Nothing here touches the database.
* When it starts serving, and after reporting a run's exit: fork the next
  spare (:mod:`.spare`), never while a run's child lives.
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
from ..conf import app_settings
from . import hugepages, orphans, parsers
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
    shares with this process. Then the heap goes into huge pages
    (:mod:`.hugepages`, unless ``TASKMANAGER_FORK_SERVER_HUGE_PAGES`` is
    False): each child's fork and exit cost less.
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
    if app_settings.FORK_SERVER_HUGE_PAGES:
        hugepages.collapse_heap()


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

    def loop(self) -> None:
        """Serve until the spooler closes its end (or dies: then PDEATHSIG ends this process)."""
        while True:
            if self.want_spare and self.spare is None and not self.children:
                self.want_spare = False
                try:
                    self.spare = Spare.fork(self.me, self.cwd, self.in_child)
                except OSError:
                    pass  # no fork now (EAGAIN, ENOMEM): the next run is forked on request
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
        if "spawn" in request and len(fds) == SPAWN_FDS:
            pid, started = self.hand_over(data, fds)
            if pid is None:
                pid, started = self.spawn(CommandName(*request["spawn"]), request["argv"], fds)
            self.send({"spawned": pid, "started": started})
        else:
            for fd in fds:
                os.close(fd)
            self.send({"error": "unknown request"})

    def hand_over(self, data: bytes, fds: list[int]) -> tuple[int | None, float | None]:
        """Give the run to the spare, if one waits; return its pid and start time (None: fork it now)."""
        spare, self.spare = self.spare, None
        if spare is None or not spare.hand_over(data, fds):
            return None, None
        for fd in fds:
            os.close(fd)
        self.children[spare.pid] = spare.started
        return spare.pid, spare.started

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
                started = self.children.pop(pid)
                swept = self.sweep(pid, started) if started is not None and not self.children else 0
                self.send({"exit": pid, "status": status, "swept": swept})
                self.want_spare = True  # forked by loop() once no run's child lives
            elif self.spare is not None and pid == self.spare.pid:
                self.spare.sock.close()
                self.spare = None  # died waiting: the next run is forked on request

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

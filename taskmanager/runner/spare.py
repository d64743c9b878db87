"""A fork server's spare child: a run's child forked *before* its run's spawn request (issue 17).

Why: the fork of a run's child (and the copy-on-write faults that follow it)
sat between the claim and the command's first line. A spare pays the same
fork earlier, while the fork server has nothing to do: a spawn request then
hands the run to the waiting spare instead of forking. It cuts the start
latency, not the CPU per run (one fork per run either way).

The rules (``docs/lifecycle.rst``):

* **When**: one spare at most per fork server, forked when the fork server
  starts serving and after it has *reported the exit* of a run's child, its
  orphans swept: never while a run's child lives. At a run's end the fork
  server (the subreaper) kills every live child of its own born since the
  run's child; a spare born during the run would be taken for an orphan.
  Forked between runs, the spare is older than every orphan of the run it
  gets, so the sweep by start time attributes them to the right run still.
  A spare that dies while waiting (killed) is reaped and forgotten: the next
  run is forked on request, and the next spare follows that run's exit (no
  loop of forks).
* **What it does before**: arms its death signal (PDEATHSIG=SIGKILL) to the
  fork server and checks its parent, takes a process group of its own, does
  the part of a run's child setup that needs no descriptor of the run
  (:func:`.childsetup.prepare_process`: signals, stream objects, log
  capture; done again after the hand-over if it failed; the working
  directory is entered at the run, its path looked up then), and
  waits on its end of a private socket pair. It holds no file of any run
  (the fork server holds none between runs) and no database connection (the
  fork server holds none: the spooler let go of SQLite before forking it,
  and it abandoned the others, :func:`.prefork.let_go_of_sqlite`); the
  fork server's modules, parsers and frozen heap are its own.
* **The hand-over**: the fork server sends the spawn request (command and
  argv) with the run's four file descriptors (``SCM_RIGHTS``) on the
  spare's socket, closes its copies, records the spare as the run's child
  with the spare's *own* start time (what ``/proc`` shows: the run's process
  identity, ``pid_started``) and answers ``spawned``. The spare then runs
  :func:`.child_main.child_main` as a freshly forked child would. A spare
  found gone at the hand-over (its socket is closed: EPIPE) is forgotten
  and the run's child forked on the spot.
* **Ends**: the socket reads EOF (the fork server closed it or died) and
  the spare leaves; PDEATHSIG takes it with a fork server that is killed.
* **Where not**: the reused child (``TASKMANAGER_RUNS_PER_CHILD`` > 1) and a
  child the supervisor forks itself (outside a spooler, no fork server, or a
  run the fork server could not take) are forked at the run, as before.
"""

import json
import os
import signal
import socket
import time
from typing import NoReturn

from .. import processes
from .child_main import CommandName, child_main
from .childsetup import prepare_process
from .prefork import leave, print_exception, start_time_of_child

#: Largest request read (a spawn request carries the run's argv).
REQUEST_BYTES = 1 << 20
#: The file descriptors a spawn request carries.
SPAWN_FDS = 4


class Spare:
    """The fork server's end of its spare: pid, start time, socket."""

    def __init__(self, pid: int, started: float | None, sock: socket.socket):
        self.pid = pid
        self.started = started
        self.sock = sock

    @classmethod
    def fork(cls, parent: int, cwd: str, in_child) -> "Spare":
        """Fork a spare from the fork server ``parent``; ``in_child`` drops the fork server's own ends in it."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        pid = os.fork()
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        if pid == 0:  # pragma: no cover - runs in the spare, which never returns
            mine.close()
            in_child()
            wait_for_run(theirs, parent, cwd)
        theirs.close()
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the spare did it first
        return cls(pid, start_time_of_child(pid, before, after), mine)

    def hand_over(self, data: bytes, fds: list[int]) -> bool:
        """Send the spawn request and its fds to the spare; False if it is gone (forget it then)."""
        try:
            # MSG_NOSIGNAL: SIGPIPE has its default action in the fork server.
            socket.send_fds(self.sock, [data], fds, socket.MSG_NOSIGNAL)
            return True
        except OSError:
            return False
        finally:
            self.sock.close()  # the message stays queued for the spare


def wait_for_run(sock: socket.socket, parent: int, cwd: str) -> NoReturn:
    """In the spare: get ready, wait for a spawn request, run it as the run's child; never return."""
    try:
        processes.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != parent:
            leave(1)  # the fork server died before PDEATHSIG was armed
        os.setpgid(0, 0)
        try:
            # The child's setup that needs no descriptor of a run, paid before the run comes.
            prepared = prepare_process()
        except Exception:  # noqa: BLE001 - done again after the hand-over, where a failure is the run's
            prepared = None
        data, fds, _flags, _addr = socket.recv_fds(sock, REQUEST_BYTES, SPAWN_FDS)
        sock.close()
        if not data or len(fds) != SPAWN_FDS:
            leave(0)  # the fork server closed its end: no run for this spare
        request = json.loads(data)
        command, argv = CommandName(*request["spawn"]), request["argv"]
    except BaseException:  # noqa: BLE001 - the spare must always leave through os._exit
        print_exception()
        leave(1)
    out_w, err_w, rec_w, go = fds
    child_main(command, argv, out_w, err_w, rec_w, parent=parent, go=go, cwd=cwd, prepared=prepared)

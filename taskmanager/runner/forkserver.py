"""A spooler process's fork server: the small process that forks the runs' children (issue 17).

Why: a run's child used to be forked by the spooler process itself, a
~50 MB process that then paid, at every run, the fork (~1 ms) and some
1,900 copy-on-write faults: after each fork the kernel write-protects the
whole heap, and CPython writes a reference count on every object the
supervisor touches afterwards. A fork server is forked once; the spooler
no longer forks per run, and the fork server, which touches almost nothing
between two forks, pays few faults.

The design, and the guarantees it keeps (``docs/lifecycle.rst``):

* **One per spooler process**, its child, started when the spooler process
  starts (after its recovery pass, :func:`.child.prepare_spooler`; else at
  its first run, :meth:`ForkServer.running`), after Django is set up. The spooler reads
  the active commands (one query) before forking it; the fork server never
  touches the database: the spooler closes its SQLite connections before
  the fork (:func:`.prefork.let_go_of_sqlite`: a fork server outlives any
  run, and must hold nothing of SQLite's per-process state), the fork server
  drops the others unused (as a run's child does), imports the active commands' modules, builds
  their argument parsers (:mod:`.parsers`), imports the modules of the
  django.tasks functions run before (:mod:`.forkserver_imports`; the first
  run of a function it has not imported gets a new fork server,
  :meth:`ForkServer.serving`), warms up Django's
  management machinery, calls ``gc.freeze()``, moves its heap into huge
  pages (:mod:`.hugepages`: a cheaper fork and exit for each child), and
  serves (:mod:`.forkserver_main`). A spooler's death takes only its own run down.
* **Death chained**: the fork server has PDEATHSIG=SIGKILL to its spooler,
  each child PDEATHSIG=SIGKILL to the fork server (each checks its parent
  after arming it): a spooler that dies (SIGKILL, a reload, a stop) takes
  its fork server and then the command with it. Recovery then closes the
  run as before, by the supervisor's pid, the child's process group and the
  ``TASKMANAGER_RUN`` marker.
* **Requests on a private socket pair** (``SOCK_SEQPACKET``: one message per
  datagram), JSON plus the child's four file descriptors passed with
  ``SCM_RIGHTS``: the write ends of its three capture pipes and its end of
  the release socket. The supervisor keeps the read ends and releases or
  cancels the child directly, as with a child of its own (:class:`.Child`).
* **A spare child forked ahead** (:mod:`.spare`): the fork server forks
  each run's child before its spawn request comes, once the previous run's
  exit is reported; the request hands the run to it. The pid and start time
  it answers are the spare's own.
* **Exit status from the fork server**: it reaps the child and sends its
  wait status; that message, on the socket the supervisor's select loop
  watches, is also what wakes the loop (no pidfd needed).
* **Orphans**: the fork server is the child subreaper of the runs' orphans
  (they re-parent to it), reaps those that exit while the run goes on (on
  SIGCHLD), and kills those still alive when the run's child exits, before
  it reports the exit with their count. The supervisor signals the child's
  process group itself (``killpg`` needs no parenthood): Stop, time-out,
  fencing and the final SIGKILL of the group are unchanged.
* **A fork server that dies** (killed, out of memory): its socket reads
  EOF; the run's child dies with it (PDEATHSIG) and re-parents, with the
  orphans, to the spooler (still a subreaper), which kills and reaps them
  (:class:`ForkServerLost` ends the run as crashed, "the supervisor
  failed"); the next run starts a new fork server (one found dead between
  two runs is replaced the same way; its spare child, dead with it and
  re-parented here, is reaped then). A run the fork server cannot take (it
  died during the request, or an argv too large for one datagram) is forked
  by the spooler itself, as outside a spooler.
* **Started before the run's pipes exist** (:meth:`.child.Child.spawn` asks
  for it first): a fork server forked while they are open would keep their
  write ends for its whole life, and its children too.
* **Code and settings**: the fork server is a copy of its spooler, so it
  sees the code and settings the spooler loaded; a reload restarts the
  spoolers, hence their fork servers. The active commands' modules are
  imported once, by the fork server: a command's module edited on disk is
  seen after a reload (as any other module of the project), not at the
  next run. Output a command's module writes while it is imported goes to
  the uWSGI log, not to a run's log.
* **Outside a spooler** (the immediate backend, tests and the bench calling
  :func:`taskmanager.runner.execute` in-process) the supervisor forks the
  child itself, as before: such a process may run threads (a fork server
  forked from it would hold their locks for its whole life), its runs are
  rare, and it is no child subreaper.
"""

import json
import logging
import os
import signal
import socket
import sys

from .. import processes
from . import orphans
from .child_main import CommandName
from .forkserver_imports import active_commands, function_module, function_modules
from .forkserver_main import serve
from .prefork import let_go_of_sqlite

logger = logging.getLogger("taskmanager.runner")

#: Largest message read from the fork server (its messages are a few dozen bytes).
_MESSAGE_BYTES = 4096


class ForkServerLost(Exception):
    """The fork server died: the run's child died with it (PDEATHSIG)."""


class ForkServerNotNow(Exception):
    """No fork server can be forked now: an SQLite transaction of the caller is open (see let_go_of_sqlite)."""


class ForkServer:
    """The spooler's end of its fork server: spawn children, learn of their exits."""

    #: The fork server of this process (a forked process starts its own).
    _current: "ForkServer | None" = None

    #: Modules of functions a fork server was replaced for, in this process (once each: see serving()).
    _renewed: set[str] = set()

    def __init__(self, pid: int, sock: socket.socket, modules=()):
        self.pid = pid
        #: The function modules it imported (:func:`.forkserver_imports.function_modules`).
        self.modules = frozenset(modules)
        self.owner = os.getpid()
        self.sock = sock
        self.alive = True
        #: pid -> exit message of the children whose exit came before it was asked for.
        self.exits: dict[int, dict] = {}

    @classmethod
    def running(cls) -> "ForkServer":
        """Return this process's fork server, started now if it has none or it died."""
        server = cls._current
        if server is not None and server.alive and server.owner == os.getpid():
            try:
                server._receive(block=False)  # one syscall: EOF if it died since the last run
            except ForkServerLost:
                pass
        if server is None or not server.alive or server.owner != os.getpid():
            server = cls._current = cls.start()
        # A spare child (spare.py) dies with a fork server that died between two
        # runs and re-parents here (a subreaper): reap it. No run's child lives now.
        orphans.reap_exited(0)
        return server

    @classmethod
    def serving(cls, task) -> "ForkServer":
        """:meth:`running`, replaced first if ``task`` carries a function whose module it has not imported.

        A fork server imports the modules of the functions run before it
        started: the first run of a new function (its carrier task just made)
        gets a new one, which imports it, and its later runs are forked with
        it imported. Once per module and spooler process: a module that
        fails to import does not replace it again. Called with no run's child
        alive (a spooler runs one run at a time).
        """
        module = function_module(task)
        server = cls._current
        if (
            module
            and server is not None
            and server.alive
            and server.owner == os.getpid()
            and module not in server.modules
            and module not in cls._renewed
        ):
            cls._renewed.add(module)
            server.retire()
        return cls.running()

    @classmethod
    def start(cls) -> "ForkServer":
        """Fork a fork server from this process (:func:`.forkserver_main.serve`)."""
        commands = active_commands()
        modules = function_modules()
        # The fork server outlives any run: it must inherit nothing of an SQLite file.
        if not let_go_of_sqlite():
            raise ForkServerNotNow("an SQLite transaction is open")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spooler = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the fork server, which never returns
            mine.close()
            serve(theirs, spooler, commands, modules)
        theirs.close()
        logger.debug("Fork server %d started by spooler %d", pid, spooler)
        return cls(pid, mine, modules)

    def spawn(self, command: CommandName, argv: list[str], fds: list[int]) -> tuple[int, float | None]:
        """Have the fork server fork a run's child with ``fds``; return its pid and start time.

        Raise ForkServerLost if the fork server is gone (before or during the
        request), OSError if the request cannot be sent (EMSGSIZE: an argv
        larger than a datagram).
        """
        request = json.dumps({"spawn": list(command), "argv": argv}).encode()
        try:
            socket.send_fds(self.sock, [request], fds)
        except ConnectionError as exc:  # EPIPE, ECONNRESET: its end is closed
            self.lost()
            raise ForkServerLost("the fork server (pid %d) is gone: %s" % (self.pid, exc)) from exc
        while True:
            message = self._receive(block=True)
            if "spawned" in message:
                return message["spawned"], message["started"]
            if "error" in message:
                raise RuntimeError("the fork server refused the request: %s" % message["error"])

    def fileno(self) -> int:
        """The socket to watch: readable when a message (a child's exit) or EOF (death) arrives."""
        return self.sock.fileno()

    def poll(self, pid: int) -> dict | None:
        """Return the exit message of ``pid`` if it has come, without waiting; raise ForkServerLost."""
        while pid not in self.exits:
            if self._receive(block=False) is None:
                return None
        return self.exits.pop(pid)

    def wait(self, pid: int) -> dict:
        """Wait for the exit message of ``pid`` (sent SIGKILL, or about to exit); raise ForkServerLost."""
        while pid not in self.exits:
            self._receive(block=True)
        return self.exits.pop(pid)

    def _receive(self, block: bool) -> dict | None:
        """Read one message; keep an exit message in ``exits``. None: nothing to read (``block`` False)."""
        try:
            data = self.sock.recv(_MESSAGE_BYTES, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            data = b""
            logger.warning("Reading from the fork server %d failed: %s", self.pid, exc)
        if not data:
            self.lost()
            raise ForkServerLost("the fork server (pid %d) died" % self.pid)
        message = json.loads(data)
        if "exit" in message:
            self.exits[message["exit"]] = message
        return message

    def lost(self) -> None:
        """Forget a fork server that died; reap it (it is this process's child)."""
        if self.retire():
            logger.error("taskmanager: the fork server (pid %d) of spooler %d died", self.pid, self.owner)

    def retire(self) -> bool:
        """End and reap this fork server (SIGKILL: its waiting children die with it); False if it was already."""
        if not self.alive:
            return False
        self.alive = False
        self.sock.close()
        processes.kill(self.pid, signal.SIGKILL)  # if it only broke its socket
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        return True

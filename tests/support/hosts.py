"""Several machines on one database: uWSGI nodes, each in a UTS + PID namespace of its own (issue 15).

A :class:`Host` is a :class:`~tests.support.uwsgi_server.UwsgiServer` (same
configuration, spool directory, log) started under
``unshare --uts --pid --fork --mount-proc``: the uWSGI master is the init
(pid 1) of a PID namespace whose host name is the host's own. To the other
nodes it is another machine: another host name, pids they cannot see, its
own ``/proc``. The file system and the loopback network are shared (no mount
or network namespace): HTTP reaches each node on ``127.0.0.1:<port>``, and the
database (PostgreSQL, MariaDB) is the one the tests use.

* :meth:`Host.kill` is the machine's death: SIGKILL to the namespace's init,
  and the kernel kills every other process of the namespace with it (the
  spoolers, the commands, their orphans), with no chance to clean up;
* :meth:`Host.restart` is the machine back: the same host name, spool
  directory and port.

Namespaces need root (or user namespaces) and ``unshare`` (util-linux);
:func:`namespaces_unavailable` says why they cannot be had, for a skip.
"""

import os
import shutil
import signal
import subprocess

from .procs import free_port, gone
from .uwsgi_server import UwsgiServer

UNSHARE = ["unshare", "--uts", "--pid", "--fork", "--mount-proc"]
#: Set the host name, then become uWSGI (the namespace's init): ``sh -c SCRIPT sh NAME ARGV...``.
SCRIPT = 'hostname "$1" && shift && exec "$@"'


def namespaces_unavailable() -> str | None:
    """Why a node cannot get a UTS + PID namespace of its own here, or None when it can."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "not root: unshare --uts --pid needs root (CI runs the tests as root)"
    try:
        done = subprocess.run(
            [*UNSHARE, "sh", "-c", SCRIPT, "sh", "tm-probe.invalid", "true"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "unshare refused: %s" % exc
    if done.returncode != 0:
        return "unshare refused (exit %d): %s" % (done.returncode, done.stderr.strip()[:300])
    return None


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children (Linux >= 3.5 with CONFIG_PROC_CHILDREN)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _ns_pids(pid: int) -> list[int]:
    """The NSpid line of /proc/<pid>/status: the pid in each nested PID namespace, outermost first."""
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return [int(p) for p in line.split()[1:]]
    except OSError:
        pass
    return []


class Host(UwsgiServer):
    """A uWSGI node standing for a machine named ``name``; the options are UwsgiServer's.

    The port is chosen once, so the node answers on the same URL after a
    restart. ``log()`` holds every life of the node, oldest first.
    """

    def __init__(self, name: str, **options):
        super().__init__(**options)
        self.name = name
        self.lives = 0
        if self.http:
            self.port = free_port()
            self.args = [a.replace("127.0.0.1:0", "127.0.0.1:%d" % self.port) for a in self.args]

    @property
    def node_id(self) -> str:
        """The node's identity as the app records it: ``host:/absolute/spool/dir``."""
        return "%s:%s" % (self.name, os.path.abspath(self.spool_dir))

    def _old_logs(self) -> list:
        return sorted(self.workdir.glob("uwsgi.log.*"), key=lambda p: int(p.suffix[1:]))

    def log(self) -> str:
        parts = []
        for path in [*self._old_logs(), self.log_path]:
            try:
                parts.append(path.read_text(errors="replace"))
            except OSError:
                continue
        return "".join(parts)

    def start(self, timeout=30.0):
        """Start uWSGI as the init of a new UTS + PID namespace named ``name``; wait until it serves."""
        if self.log_path.exists():
            # A new life: readiness is read from a fresh log (UwsgiServer.start reads self.log_path).
            self.log_path.rename(self.workdir / ("uwsgi.log.%d" % self.lives))
        self.lives += 1
        plain = self.args
        self.args = [*UNSHARE, "sh", "-c", SCRIPT, "sh", self.name, *plain]
        try:
            return super().start(timeout)
        finally:
            self.args = plain

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def init_pid(self) -> int | None:
        """The pid (in this namespace) of the node's init: the uWSGI master, unshare's one child."""
        if not self.alive:
            return None
        found = children(self.proc.pid)
        return found[0] if found else None

    def pids(self) -> list[int]:
        """This namespace's pids of every process of the node (uWSGI's and the commands'), init first."""
        init = self.init_pid()
        if init is None:
            return []
        try:
            namespace = os.readlink("/proc/%d/ns/pid" % init)
        except OSError:
            return []
        found = [init]
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != init:
                try:
                    if os.readlink("/proc/%s/ns/pid" % name) == namespace:
                        found.append(int(name))
                except OSError:
                    continue
        return found

    def host_pid(self, ns_pid: int) -> int | None:
        """This namespace's pid of the node's process ``ns_pid`` (a pid the node recorded), or None."""
        for pid in self.pids():
            pids = _ns_pids(pid)
            if len(pids) > 1 and pids[-1] == ns_pid:
                return pid
        return None

    def kill(self, timeout=10.0):
        """The machine dies: SIGKILL to the namespace's init, which takes every process of it along."""
        init = self.init_pid()
        if init is not None:
            os.kill(init, signal.SIGKILL)
        self._reap(timeout)

    def restart(self, timeout=30.0):
        """The machine is back: the same host name, spool directory and port."""
        if self.alive:
            self.kill()
        return self.start(timeout)

    def _reap(self, timeout):
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)
        self.proc = None

    def stop(self):
        """Stop the node as an operator would (SIGINT), then make sure nothing of it is left."""
        if self.proc is None:
            return
        init = self.init_pid()
        if init is not None:
            try:
                os.kill(init, signal.SIGINT)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            if not gone(init):
                os.kill(init, signal.SIGKILL)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(5)

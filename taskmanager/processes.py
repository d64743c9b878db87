"""Linux process facts read from ``/proc``, for supervising runs and recovering from crashes.

Start times are clock ticks since boot (field 22 of ``/proc/<pid>/stat``):
together with a pid they identify one process, because a pid number that is
reused belongs to a process started later. A process group id is reserved by
the kernel while any member of the group lives, so a group whose leader pid
is gone cannot have been taken over by a new process.

Outside Linux (no ``/proc``) every function degrades to "unknown" (None or
an empty result) and never raises.
"""

import ctypes
import functools
import os
import signal
import socket
import sys

#: Environment variable carried by every process of a run (see ``run_marker``).
RUN_ENV = "TASKMANAGER_RUN"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return data.rsplit(b")", 1)[1].split()


@functools.cache
def node_identity() -> str:
    """Return what makes this process's pids mean something: ``"<boot id>/<pid namespace>"``.

    Two machines, or two containers of one machine, can share a host name
    (host networking, replicas with a fixed host name); a pid is only worth
    judging where the boot (``/proc/sys/kernel/random/boot_id``) and the PID
    namespace (``readlink /proc/self/ns/pid``) are the same (issue 15). ""
    when unknown (no ``/proc``). A process's own PID namespace never
    changes, so the value is read once.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return "%s/%s" % (boot, namespace)


def start_time(pid: int) -> float | None:
    """Return the start time of ``pid`` in clock ticks since boot, or None if unknown."""
    fields = _stat_fields(pid)
    try:
        return float(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def is_same_process(pid: int | None, started: float | None) -> bool | None:
    """Return whether ``pid`` is alive and is the process that started at ``started``.

    None when that cannot be told (no pid or no recorded start time). A
    zombie is not alive: it has ended, only its parent has not reaped it yet
    (an orphan waits for init, which in a container may never reap it).
    """
    if not pid or started is None:
        return None
    fields = _stat_fields(pid)
    if not fields or fields[0] in (b"Z", b"X"):
        return False
    try:
        return float(fields[19]) == started
    except (IndexError, ValueError):
        return False


def fd_identities(fds=(0, 1, 2)) -> list:
    """(device, inode) of each of ``fds``: what they are open on; [] when one is closed."""
    try:
        return [(st.st_dev, st.st_ino) for st in map(os.fstat, fds)]
    except OSError:
        return []


def is_alive(pid: int) -> bool:
    """Return whether ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in (b"Z", b"X")


def children(ppid: int, alive: bool = False) -> list[tuple[int, float]]:
    """Return (pid, start time) of the processes whose parent is ``ppid``.

    Zombies are included unless ``alive``.
    """
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        try:
            if fields and int(fields[1]) == ppid and not (alive and fields[0] in (b"Z", b"X")):
                found.append((int(name), float(fields[19])))
        except (IndexError, ValueError):
            continue
    return found


def has_children() -> bool:
    """Return whether this process has any child, alive or zombie (one syscall)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def with_marker(marker: str) -> list[int]:
    """Return the pids of the processes whose environment holds ``TASKMANAGER_RUN=<marker>``.

    Only processes whose environment this process may read are seen (same
    user, or root). A process that replaced its environment is not found.
    """
    needle = f"{RUN_ENV}={marker}".encode()
    found = []
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if needle in env and needle in env.split(b"\0"):
            found.append(int(name))
    return found


def kill_group(pgid: int | None, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to the process group ``pgid``; return whether any process got it."""
    if not pgid or pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to ``pid``; return whether it was delivered."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@functools.cache
def _libc():
    """The C library, loaded once per process image (a forked child inherits it: no load per run)."""
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> bool:
    try:
        return _libc().prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent thread dies."""
    return _prctl(_PR_SET_PDEATHSIG, int(sig))


def set_child_subreaper() -> bool:
    """Make orphaned descendants of this process re-parent to it instead of to init.

    Then a run's subprocess that left the process group (``setsid``,
    ``start_new_session=True``) and outlived the command is still a child of
    the supervisor, which can find it, kill it and reap it. Not inherited by
    forked children.
    """
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


@functools.cache
def python_executable() -> str | None:
    """Return the path of the Python interpreter running this process, or None if not found.

    Inside uWSGI ``sys.executable`` is the uwsgi binary, which cannot run
    ``python -c ...`` (subprocesses of ``sys.executable``, multiprocessing's
    "spawn" and "forkserver" start methods). Look for ``python3.X``,
    ``python3`` and ``python`` in the virtualenv's ``bin`` (``sys.prefix``),
    then in the base installation's. Outside uWSGI, ``sys.executable``.
    """
    if os.path.basename(sys.executable or "").startswith("python"):
        return sys.executable
    names = ("python%d.%d" % sys.version_info[:2], "python%d" % sys.version_info[0], "python")
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)):
        for name in names:
            path = os.path.join(prefix, "bin", name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


def use_python_executable() -> None:
    """Point ``sys.executable`` (and multiprocessing) at the real Python interpreter, if found."""
    path = python_executable()
    if not path or path == sys.executable:
        return
    sys.executable = path
    spawn = sys.modules.get("multiprocessing.spawn")
    if spawn is not None:  # it copied sys.executable when it was imported
        spawn.set_executable(path)


def supervised_here(now) -> dict:
    """A new report's fields saying this process supervises it, and its first heartbeat (``now``).

    Recovery judges the run by them: on this host by the pid and its start
    time, elsewhere by the heartbeat (``recovery/interrupted.py``).
    """
    return {
        "host": socket.gethostname(),
        "supervisor_pid": os.getpid(),
        "supervisor_started": _own_start_time(),
        "supervisor_identity": node_identity(),
        "heartbeat": now,
    }


def _own_start_time() -> float | None:
    """Return this process's start time (``start_time``), read once per process."""
    pid = os.getpid()
    if pid not in _own_start:
        _own_start.clear()
        _own_start[pid] = start_time(pid)
    return _own_start[pid]


# pid -> start time of this process (a forked process has another pid).
_own_start: dict[int, float | None] = {}

"""Processes as Linux shows them in /proc, and a free port."""

import os
import socket


def state(pid: int) -> bytes | None:
    """The state letter of ``pid`` in /proc (b"S" sleeping, b"Z" zombie, ...), or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return None


def gone(pid: int) -> bool:
    """Whether ``pid`` is no longer a live process (a zombie counts as gone)."""
    return state(pid) in (None, b"Z", b"X")


def _stats() -> dict[int, list[bytes]]:
    """pid -> the fields of /proc/<pid>/stat after the command name, for every process."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as fh:
                found[int(name)] = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
    return found


def _children(ppid: int) -> list[tuple[int, bytes]]:
    """(pid, state) of each child of ``ppid``, live or zombie."""
    return [(pid, fields[0]) for pid, fields in _stats().items() if int(fields[1]) == ppid]


def tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    children = {}
    for pid, fields in _stats().items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def parent_pid(pid: int) -> int | None:
    """The pid of the parent of ``pid``, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except OSError:
        return None


def zombie_children(ppid: int) -> int:
    """How many children of ``ppid`` are zombies (exited, not reaped yet)."""
    return sum(state == b"Z" for _pid, state in _children(ppid))


def children(ppid: int) -> list[int]:
    """The pids of the children of ``ppid`` (zombies included), sorted."""
    return sorted(pid for pid, _state in _children(ppid))


def vm_kib(pid, field: str):
    """A memory field of /proc/<pid>/status (``VmRSS``, ``VmHWM``) in KiB, or None.

    None when the process is gone or a zombie (which has no memory fields);
    ``pid`` may be ``"self"``.
    """
    try:
        with open("/proc/%s/status" % pid) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak(pid) -> bool:
    """Reset VmHWM of ``pid`` to its current RSS (Linux >= 4.0); return whether it worked."""
    try:
        with open("/proc/%s/clear_refs" % pid, "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def live_spooler_pids(node) -> list[int]:
    """The pids of the uWSGI ``node``'s spooler processes that are still alive."""
    return [pid for pid in node.spooler_pids() if not gone(pid)]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""Processes as Linux shows them in /proc, and a free port."""

import ctypes
import mmap
import os
import re
import socket
import struct


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


def heap_in_huge_pages_kib(pid) -> int:
    """How much of ``pid``'s private anonymous memory lies in transparent huge pages, KiB (see :func:`page_frames_unreadable`).

    ``AnonHugePages`` counts only what a process maps with one entry per huge
    page; a huge page its process (or a child sharing it) wrote on stays one
    page, mapped by 4 KiB entries since (which Linux still forks and unmaps
    in batches). Counted page by page: the frame of each present page
    (``/proc/<pid>/pagemap``) and whether it is part of a huge page (flag
    ``THP`` in ``/proc/kpageflags``).
    """
    page = mmap.PAGESIZE
    kib = 0
    with open("/proc/%s/maps" % pid) as maps:
        regions = [line.split() for line in maps]
    with open("/proc/%s/pagemap" % pid, "rb") as pagemap, open("/proc/kpageflags", "rb") as flags:
        for fields in regions:
            if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            low, high = (int(address, 16) for address in fields[0].split("-"))
            pagemap.seek(low // page * 8)
            entries = pagemap.read((high - low) // page * 8)
            for (entry,) in struct.iter_unpack("<Q", entries):
                frame = entry & ((1 << 55) - 1)
                if entry >> 63 and frame:  # present, and its frame shown
                    flags.seek(frame * 8)
                    if struct.unpack("<Q", flags.read(8))[0] >> 22 & 1:  # KPF_THP
                        kib += page // 1024
    return kib


def page_frames_unreadable() -> str | None:
    """Why this process cannot read page frames in ``/proc`` (CAP_SYS_ADMIN), or None when it can."""
    probe = bytearray(mmap.PAGESIZE)  # one present page of this process
    address = ctypes.addressof((ctypes.c_char * len(probe)).from_buffer(probe)) // mmap.PAGESIZE
    try:
        with open("/proc/self/pagemap", "rb") as pagemap, open("/proc/kpageflags", "rb"):
            pagemap.seek(address * 8)
            (entry,) = struct.unpack("<Q", pagemap.read(8))
    except OSError as exc:
        return "cannot read page frames: %s" % exc
    return None if entry & ((1 << 55) - 1) else "page frames read as 0: reading them needs CAP_SYS_ADMIN"


def no_huge_page_collapse() -> str | None:
    """Why this machine cannot collapse memory into huge pages as ``runner/hugepages.py`` does, or None when it can."""
    release = tuple(int(part) for part in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
    if release < (6, 9):
        return "Linux %s: the fork server collapses its heap on 6.9 and later" % os.uname().release
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            setting = fh.read()
    except OSError:
        return "this kernel has no transparent huge pages"
    if "[never]" in setting:
        return "transparent huge pages are turned off on this machine"
    return None

"""The fork server's heap in transparent huge pages: a cheaper fork and a cheaper exit for each run's child.

What a fresh child per run costs the machine is mostly the kernel's work on
the address space it inherits (``bench/README.md``): ``fork()`` copies one
page-table entry per 4 KiB page of the fork server's ~40 MB of private
anonymous memory (the Python heap, which the fork server got from its
spooler), and the child's exit takes them down again, though the child
touches a few hundred of those pages at most. Where that memory is mapped by
2 MiB transparent huge pages, the fork copies one entry per 2 MiB and the
exit drops it: the pages stay shared copy-on-write as before, and a child
that writes on one gets a 4 KiB copy of that page alone (since Linux 5.8 the
kernel splits the huge mapping in the writing process, it does not copy 2 MiB).

So :func:`collapse_heap` asks Linux (``madvise(MADV_COLLAPSE)``, Linux 6.1) to
move the fork server's private anonymous memory into huge pages, once, when
it has imported what its children need and frozen its heap
(:func:`.forkserver_main.prepare`), before it forks anything. A huge page
that the fork server or a child writes on afterwards is split in the
writer's page table only: the page stays one huge page, which Linux still
forks and unmaps in batches. Measured (``bench_throughput.py``, 2 spoolers,
6 interleaved pairs): about 1 ms of CPU less per run, 0.35 ms of it the fork
server's and 0.6 ms the child's (``bench/README.md``).

What it costs: the holes of each 2 MiB region are filled with zeroed memory
(a few MiB more resident in each fork server, shared with its children), and
the collapse itself (6-15 ms, once per fork server). Where it
cannot be done it is left undone, silently: a kernel before 6.1 or without
transparent huge pages (``EINVAL``), memory short of free huge pages
(``EAGAIN``/``ENOMEM`` for that region), and a machine whose administrator
turned transparent huge pages off (``never`` in
``/sys/kernel/mm/transparent_hugepage/enabled``: ``MADV_COLLAPSE`` would
ignore that setting, this module respects it).
"""

import ctypes
import errno
import mmap
import os

#: ``MADV_COLLAPSE`` of Linux's ``<asm-generic/mman-common.h>`` (Python's ``mmap`` names it from 3.13 on).
MADV_COLLAPSE = getattr(mmap, "MADV_COLLAPSE", 25)
HUGE_PAGE = 2 << 20
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"


def collapse_heap() -> int:
    """Collapse this process's private anonymous memory into huge pages; return the bytes collapsed (0: none)."""
    if not _allowed():
        return 0
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    done = 0
    for start, end in _regions():
        for chunk in range(start, end, HUGE_PAGE):
            for _attempt in range(2):  # EAGAIN: a transient failure (a page locked, no huge page at hand)
                if madvise(chunk, HUGE_PAGE, MADV_COLLAPSE) == 0:
                    done += HUGE_PAGE
                    break
                error = ctypes.get_errno()
                if error == errno.EINVAL:
                    return done  # no MADV_COLLAPSE here (Linux < 6.1, no THP): nothing more to try
                if error != errno.EAGAIN:
                    break  # this region cannot be (ENOMEM, EPERM...): the next one may
    return done


def _allowed() -> bool:
    """False where the machine's administrator turned transparent huge pages off."""
    try:
        with open(THP_SETTING) as fh:
            return "[never]" not in fh.read()
    except OSError:
        return False  # no transparent huge pages in this kernel


def _regions() -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of this process's private anonymous writable mappings, as (start, end)."""
    regions = []
    try:
        with open("/proc/%d/maps" % os.getpid()) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return regions
    for line in lines:
        fields = line.split(maxsplit=5)
        # address perms offset dev inode [pathname]: no pathname is an anonymous mapping.
        name = fields[5].strip() if len(fields) > 5 else ""
        if (
            len(fields) < 5
            or not fields[1].startswith("rw")
            or fields[1][3] != "p"
            or name not in ("", "[heap]")
        ):
            continue
        low, high = (int(address, 16) for address in fields[0].split("-"))
        start = -(-low // HUGE_PAGE) * HUGE_PAGE
        end = high // HUGE_PAGE * HUGE_PAGE
        if end > start:
            regions.append((start, end))
    return regions

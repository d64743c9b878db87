"""The fork server's heap in transparent huge pages: a cheaper fork and a cheaper exit for each run's child.

What a fresh child per run costs the machine is mostly the kernel's work on
the address space it inherits (``bench/README.md``): ``fork()`` copies one
page-table entry per 4 KiB page of the fork server's ~40 MB of private
anonymous memory (the Python heap, which the fork server got from its
spooler), and the child's exit takes them down again, though the child
touches a few hundred of those pages at most. Where that memory lies in
transparent huge pages (2 MiB on x86-64), Linux does that work a huge page
at a time: one entry per huge page where a process still maps it whole, and
in batches where it maps it by 4 KiB entries (since Linux 6.9, as far as we
know: the batching of ``fork()`` and of unmapping for large folios). The
pages stay shared copy-on-write as before: a process that writes on a huge
page gets a 4 KiB copy of the page written (since Linux 5.8 the kernel splits
the huge mapping in the writing process and copies 4 KiB, not 2 MiB), and the
huge page stays one, unless memory runs short (the kernel may then break up
a huge page mapped in part only).

So :func:`collapse_heap` asks Linux (``madvise(MADV_COLLAPSE)``, Linux 6.1)
to move the fork server's private anonymous memory into huge pages, once,
when it has imported what its children need and frozen its heap
(:func:`.forkserver_main.prepare`), before it forks anything. Measured
(``bench_throughput.py``, 2 spoolers, 6 interleaved pairs, Linux 6.18):
about 1 ms of CPU less per run, 0.35 ms of it the fork server's and 0.6 ms
the child's (``bench/README.md``).

What it costs: memory, about 8 MB per spooler process in the test project
(proportional set sizes of the spooler, its fork server and its spare,
measured with and without): the pages collapsed were shared with the
spooler (the fork server is its copy) and are the fork server's own
afterwards, and the holes of each huge page are filled; and the collapse
itself, 6-35 ms once per fork server, bounded by :data:`TIME_BUDGET`.
``TASKMANAGER_FORK_SERVER_HUGE_PAGES = False`` turns it off. It is left
undone, silently, on a kernel before 6.9 (the gain rests on the batching
above) or without transparent huge pages, where the machine's administrator
turned them off (``never`` in ``/sys/kernel/mm/transparent_hugepage/enabled``:
``MADV_COLLAPSE`` would ignore that setting, this module respects it), and
for each region Linux refuses (a region it cannot collapse, no huge page to
be had); it never raises.
"""

import ctypes
import errno
import mmap
import os
import re
import time

#: ``MADV_COLLAPSE`` of Linux's ``<asm-generic/mman-common.h>`` (Python's ``mmap`` names it from 3.13 on).
MADV_COLLAPSE = getattr(mmap, "MADV_COLLAPSE", 25)
THP_DIR = "/sys/kernel/mm/transparent_hugepage"
#: The first Linux with the batching the gain rests on (see the module's docstring).
LINUX_MIN = (6, 9)
#: Seconds the collapse may take (it may compact memory to find huge pages): what is left is left.
TIME_BUDGET = 0.05


def collapse_heap() -> int:
    """Collapse this process's private anonymous memory into huge pages; return the bytes collapsed (0: none).

    Never raises: it is an optimisation, and the fork server must serve anyway.
    """
    try:
        size = huge_page_size()
        if not size:
            return 0
        return _collapse(size)
    except Exception:  # noqa: BLE001 - see the docstring
        return 0


def huge_page_size() -> int:
    """The size of a transparent huge page here, in bytes; 0 where this module should not collapse anything."""
    if _linux_version() < LINUX_MIN:
        return 0
    try:
        with open(os.path.join(THP_DIR, "enabled")) as fh:
            if "[never]" in fh.read():
                return 0  # turned off by the machine's administrator
        with open(os.path.join(THP_DIR, "hpage_pmd_size")) as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 0  # no transparent huge pages in this kernel


def _linux_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _collapse(size: int) -> int:
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    deadline = time.monotonic() + TIME_BUDGET
    done = 0
    for start, end in _regions(size):
        for chunk in range(start, end, size):
            if time.monotonic() > deadline:
                return done
            for _attempt in range(2):  # EAGAIN: a transient failure (a page locked, no huge page at hand)
                if madvise(chunk, size, MADV_COLLAPSE) == 0:
                    done += size
                    break
                error = ctypes.get_errno()
                if error == errno.ENOMEM:
                    return done  # no huge page to be had: the next ones would fail too, slowly
                if error != errno.EAGAIN:
                    break  # this chunk cannot be (EINVAL: nothing mapped in it, say): the next one may
    return done


def _regions(size: int) -> list[tuple[int, int]]:
    """The ``size``-aligned parts of this process's private anonymous writable mappings, as (start, end)."""
    regions = []
    with open("/proc/%d/maps" % os.getpid()) as fh:
        lines = fh.read().splitlines()
    for line in lines:
        # address perms offset dev inode [pathname]: no pathname is an anonymous mapping.
        fields = line.split(maxsplit=5)
        name = fields[5].strip() if len(fields) > 5 else ""
        if (
            len(fields) < 5
            or not fields[1].startswith("rw")
            or fields[1][3] != "p"
            or fields[4] != "0"
            or name not in ("", "[heap]")
        ):
            continue
        low, high = (int(address, 16) for address in fields[0].split("-"))
        start = -(-low // size) * size
        end = high // size * size
        if end > start:
            regions.append((start, end))
    return regions

"""What a process that forks runs' children does around the fork: warm up, date and reap the child.

Shared by the two places that fork a run's child: the supervisor itself
(:mod:`.child`) and a spooler's fork server (:mod:`.forkserver_main`).
"""

import io
import logging
import os
import sys
import traceback
from typing import NoReturn

from django.db import connections

from .. import processes

logger = logging.getLogger("taskmanager.runner")


def reap(pid: int) -> None:
    """Wait for a child of this process that was sent SIGKILL (blocks until it is gone)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def start_time_of_child(pid: int, before: int, after: int) -> float | None:
    """Return the start time of the child ``pid`` just forked, as ``processes.start_time`` gives it.

    ``before`` and ``after`` are ``CLOCK_BOOTTIME`` (ns) read just before and
    just after the fork. Linux stamps a new process with that clock during
    the fork and ``/proc`` shows it in clock ticks, rounded down: when both
    reads fall in the same tick, that tick is the start time, and reading
    another process's ``/proc/<pid>/stat`` (a fifth of a millisecond) is spared.
    """
    per_tick = 1_000_000_000 // _CLOCK_TICKS
    if before // per_tick == after // per_tick:
        return float(before // per_tick)
    return processes.start_time(pid)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The pid of the process whose Django management machinery is warm (see warm_up).
_warm_pid: int | None = None


def warm_up() -> None:
    """Once per process, build before forking what each child would otherwise build again.

    Django's management machinery (its argument parser, the translations of
    its help texts, their regular expressions) fills caches on first use.
    Filled once here, every forked child finds them ready instead of paying
    for them in each run. Only Django's code runs here, through a command that
    does nothing: the task's command is imported and run by the child alone.
    """
    global _warm_pid
    if _warm_pid == os.getpid():
        return
    _warm_pid = os.getpid()
    # Deferred: needed once per process, just before its first fork.
    from django.core.management import call_command
    from django.core.management.base import BaseCommand

    class Nothing(BaseCommand):
        def handle(self, *args, **options):
            pass

    sink = io.StringIO()
    try:
        call_command(Nothing(), stdout=sink, stderr=sink)
        processes.python_executable()  # cached: the children use it (child_main)
    except Exception:  # noqa: BLE001 - only a speed-up: the children do it themselves
        logger.debug("Warming up the management machinery failed", exc_info=True)


def let_go_of_sqlite() -> bool:
    """Close this process's SQLite connections before a fork whose process outlives a run; False if one is in use.

    SQLite keeps, per process, what it knows of a database file: its locks
    and its mapping of the WAL index (the ``-shm`` file). A fork copies that
    knowledge but not the locks (POSIX locks are not inherited), so a forked
    process does not keep the file's index alive. While the supervisor holds
    its connection for the whole life of a run's child, the index cannot
    change under the child. A fork server, or a reused child waiting between
    runs, outlives that: once every process has closed the database, the last
    deletes ``-shm``, the next creates another, and a connection opened in
    the forked process would reuse the inherited mapping, an index no other
    process sees: "database disk image is malformed", then a corrupt file.
    With no SQLite connection open at the fork, the forked process inherits
    nothing of the file, and its connections start afresh.

    A connection inside a transaction (the caller's, outside a spooler) is
    left open: the caller then forks a fresh child of the run, which its
    connection covers (return False).
    """
    open_ = [conn for conn in connections.all(initialized_only=True) if conn.vendor == "sqlite"]
    if any(conn.in_atomic_block for conn in open_):
        return False
    for conn in open_:
        conn.close()
    return True


def print_exception() -> None:
    """In a forked process about to leave: print the exception being handled, whatever happens."""
    try:
        traceback.print_exc()
    except BaseException:  # noqa: BLE001 - the process must still reach os._exit
        pass


def leave(code: int) -> NoReturn:
    """Leave a forked process (a run's child, a fork server) through ``os._exit``, its output flushed.

    Never ``sys.exit``: the exit handlers and finalizers of the process it was
    forked from (uWSGI's, Django's connections) must not run here.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - the process must still reach os._exit
        pass
    os._exit(code)

"""The orphans of a run: its processes that re-parented to the supervisor, a child subreaper.

In a spooler the fork server is their subreaper and handles them itself
(:mod:`.forkserver_main`); this module serves a child the supervisor forked
itself, and the orphans of a fork server that died (they re-parent to the
spooler process).

Its one job: while the run goes on, reap those that have exited
(:func:`reap_exited`), so they do not stay zombies holding pids until the
run ends; when it ends, kill and reap those still alive (:func:`sweep`),
counting only live ones.
"""

import os
import signal

from .. import processes
from .prefork import reap

#: At most this many zombies reaped per call: the follow loop has other duties.
MAX_REAPED = 10000


def reap_exited(main_pid: int) -> int:
    """Reap the exited children of this process except ``main_pid``; return how many.

    Each zombie is peeked at first (``WNOWAIT``): the exit status of the
    run's own child, ``main_pid``, is left for the follow loop to collect.
    Linux lists children oldest first, so when that child has exited the
    peek finds it and reaping stops until the next call.
    """
    reaped = 0
    while reaped < MAX_REAPED:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            break
        if info is None or info.si_pid in (0, main_pid):
            break
        try:
            done, _ = os.waitpid(info.si_pid, os.WNOHANG)
        except ChildProcessError:
            done = 0
        if not done:
            break
        reaped += 1
    return reaped


def sweep(main_pid: int, child_started: float) -> int:
    """Kill and reap the live children of this process started since ``child_started``; return how many.

    They are the run's orphans: the supervisor starts no other process
    during a run. Those that had already exited are reaped, not counted.
    """
    killed = 0
    me = os.getpid()
    # Killing one may orphan its own children, which then re-parent here.
    for _ in range(20):
        reap_exited(main_pid)
        if not processes.has_children():
            break
        ours = [pid for pid, born in processes.children(me, alive=True) if born >= child_started]
        if not ours:
            break
        for pid in ours:
            killed += processes.kill(pid, signal.SIGKILL)
        for pid in ours:
            reap(pid)
    return killed

"""Reused children: a child that serves several runs of one command (``TASKMANAGER_RUNS_PER_CHILD``).

By default (``RUNS_PER_CHILD = 1``) every run gets a fresh child, forked for
it and gone at its end. Above 1, a child whose run ended cleanly stays, its
pipes open, waiting for the next release (:func:`.child_main.end_run` tidies
the process between runs), and the next run of the **same command** in this
spooler process takes it (:func:`take`) instead of forking: no fork, no exit,
no import of the command. "The same command" is :func:`key`: for the runs of
django.tasks functions, which all run the one internal command
``_run_task_result``, the same *function* (its carrier task): a child serves
the runs of one function only, as it would of one command. Each run keeps its own report, marker, log
capture, Stop and time-out: only the process is shared.

A child is replaced, not reused (:func:`after_run`), after a run that

* was stopped, timed out, fenced or crashed (the child is dead or killed), or
  ended by an exception (the command's state may be half-changed);
* left processes behind (:func:`left_behind`; killed with the child), or a
  thread running (:func:`thread_running`; it would go on during the next run),
  or closed or redirected fds 0-2 (the child then leaves instead of waiting);
* left the child bigger than ``TASKMANAGER_CHILD_MAX_MEMORY_MB``;
* was its ``RUNS_PER_CHILD``-th.

Each spooler process keeps at most one waiting child (the last command it
ran): a run of another command retires it. A waiting child holds no
database connection the supervisor uses and dies with its spooler
(``PR_SET_PDEATHSIG``), like any run's child.
"""

import logging
import os

from .. import processes
from ..conf import app_settings
from ..models import EndKind
from . import orphans
from .child import Child
from .child_main import CommandName

logger = logging.getLogger("taskmanager.runner")

# pid of the spooler process -> its waiting child (a forked process has another pid).
_waiting: dict = {}


def enabled() -> bool:
    """Whether children serve more than one run (``RUNS_PER_CHILD`` above 1)."""
    return app_settings.RUNS_PER_CHILD > 1


def key(task) -> tuple:
    """What a reused child serves runs of: ``task``'s command; a django.tasks function's carrier task."""
    return (CommandName.of(task), task.pk if task.is_carrier else None)


def child_for(task, argv: list[str]):
    """Return the child for a run of ``task`` with ``argv``: this process's waiting one, or a new one."""
    child = take(task)
    if child is None:
        child = Child.spawn(task, argv, reuse=enabled())
        child.reuse_key = key(task)
    return child


def take(task):
    """Return this process's waiting child for ``task``'s :func:`key`, or None (a child of another retires)."""
    child = _waiting.pop(os.getpid(), None)
    if child is None:
        return None
    if child.reuse_key == key(task) and processes.is_alive(child.pid):
        return child
    retire(child)
    return None


def after_run(child, end, follower) -> None:
    """After a run's end is recorded: keep ``child`` waiting for the next run, or retire it."""
    if child is None or not getattr(follower, "kept", False):
        return  # not a reused child, or it is dead and reaped already
    reason = _replace_reason(child, end)
    if reason:
        logger.debug("Child %s of %s replaced: %s", child.pid, child.command_key, reason)
        retire(child)
        return
    previous = _waiting.pop(os.getpid(), None)
    if previous is not None:
        retire(previous)
    _waiting[os.getpid()] = child


def retire(child) -> None:
    """Kill a waiting child, reap it, close its pipes (:meth:`Child.cancel`)."""
    try:
        child.cancel()
    except OSError:
        logger.debug("Retiring child %s failed", child.pid, exc_info=True)


def retire_all() -> None:
    """Retire this process's waiting child, if any."""
    child = _waiting.pop(os.getpid(), None)
    if child is not None:
        retire(child)


def _replace_reason(child, end) -> str | None:
    if end.kind not in (EndKind.COMPLETED, EndKind.EXIT_CODE):
        return "the run ended %s" % end.kind
    if child.runs >= app_settings.RUNS_PER_CHILD:
        return "it served %d runs" % child.runs
    rss = _rss_mib(child.pid)
    if rss is None:
        return "it is gone"
    if rss > app_settings.CHILD_MAX_MEMORY_MB:
        return "it uses %d MiB" % rss
    return None


def left_behind(pid: int, subreaper: bool, marker: str) -> int:
    """Return how many processes the run of the reused child ``pid`` left alive.

    Its process group is no longer the run's whole story (the child outlives
    the run), so: the child's own children, and, in a spooler (a child
    subreaper), the other children of this process, which are the orphans of
    the run (every descendant of the child that lost its parent re-parents
    here). Elsewhere, the processes carrying the run's marker.
    """
    found = set(_children(pid))
    if subreaper:
        orphans.reap_exited(pid)
        found.update(p for p in _children(os.getpid()) if p != pid)
    else:
        found.update(p for p in processes.with_marker(marker) if p != pid)
    return len(found)


def _children(pid: int) -> list[int]:
    """The live children of ``pid``, from ``/proc/<pid>/task/*/children`` (Linux 3.5+)."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as fh:
                found.extend(int(p) for p in fh.read().split())
        except OSError:
            continue
    return [p for p in found if processes.is_alive(p)] if found else found


def thread_running(pid: int) -> bool:
    """Whether the waiting child ``pid`` runs a thread besides its main one (the run left it running).

    Checked before the pipes' last read (:meth:`.follow.ChildFollower.keep_child`):
    a thread that ended by then wrote all it wrote into its own run's log;
    one checked later could write between that read and the check, into the
    next run's log (another task's, maybe another person's).
    """
    try:
        return len(os.listdir("/proc/%d/task" % pid)) > 1
    except OSError:
        return False


def _rss_mib(pid: int) -> float | None:
    try:
        with open("/proc/%d/statm" % pid) as fh:
            return int(fh.read().split()[1]) * _PAGE / (1024 * 1024)
    except (OSError, IndexError, ValueError):
        return None


_PAGE = os.sysconf("SC_PAGE_SIZE")

"""Superseded spool entries: removing, a bounded batch per pass, the future entries nobody will run.

A Start then Stop (or an edit) of a task scheduled far ahead leaves the old
entry on disk until its date, where it would only be consumed as stale; every
directory scan of every spooler pays for it meanwhile. :func:`sweep_superseded`
reads at most a batch of the node's spool files per pass (the next pass goes
on after the last file read), asks the database which tokens are still
current, and deletes the others through :func:`taskmanager.spoolfiles.discard`
(future entries only, under uWSGI's lock). Imports neither the runner nor a backend.
"""

import logging
import time

from .. import spoolaside, spoolfiles
from ..models import Task

logger = logging.getLogger("taskmanager.recovery")

#: spool directory -> name of the last file the previous pass of this process read.
_cursor: dict[str, str] = {}


def sweep_superseded(spool_dir: str, limit: int) -> int:
    """Delete up to ``limit`` superseded future entries of ``spool_dir``; return how many.

    An entry is superseded when its token is neither the ``run_token`` nor the
    ``run_now_token`` of its task (or the task is gone). A file's token is
    committed before the file is written, so a current token is always seen.
    """
    if limit <= 0:
        return 0
    not_before = time.time() + spoolfiles.DISCARD_MARGIN_SECONDS
    found, _cursor[spool_dir] = spoolfiles.waiting_entries(
        spool_dir, not_before, after=_cursor.get(spool_dir, ""), limit=limit
    )
    # Task 0: the hint of a django.tasks row (taskmanager.djangotasks), deferred to its run_after; kept.
    found = [entry for entry in found if entry[1] != 0]
    if not found:
        return 0
    current: dict[int, set[str]] = {}
    rows = Task.objects.filter(pk__in={task_id for _path, task_id, _token in found})
    for pk, run_token, run_now_token in rows.values_list("pk", "run_token", "run_now_token"):
        current[pk] = {run_token, run_now_token} - {""}
    removed = 0
    for path, task_id, token in found:
        if token not in current.get(task_id, ()) and spoolfiles.discard(path, token, not_before):
            removed += 1
    return removed


def move_aside_unreadable(spool_dir: str) -> int:
    """Move aside the files of ``spool_dir`` that never reach Python (empty, broken header); return how many.

    uWSGI gives up on those before any handler runs, at every scan: only a
    pass over the directory ends that (:func:`taskmanager.spoolaside.sweep`,
    files older than a minute). One log line per file.
    """
    moved = spoolaside.sweep(spool_dir)
    for name, reason in moved:
        logger.error(
            "taskmanager: unreadable spool file %s (%s) moved aside to %s/",
            name,
            reason,
            spoolaside.DIRNAME,
        )
    return len(moved)

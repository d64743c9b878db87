"""Lost spool entries: finding this node's pending tasks whose entry is gone, and spooling them again.

:func:`respool` gives each such task a new token (one conditional UPDATE) and
a new entry through the ``spool`` function it is given, due at its stored
next run (:func:`due_time`). Used at spooler start and by the periodic
recovery (:func:`respool_missing`), and by ``manage.py respool_tasks``. Imports neither the runner nor a backend.
"""

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from .. import dbclock, schedule, spoolfiles
from ..conf import served_queues
from ..models import Report, Task, new_token

logger = logging.getLogger("taskmanager.recovery")


#: (task id, token) of the tasks the last periodic pass of this process found
#: with no entry recorded at all (``spooler_id`` ""), see :func:`respool`.
_unrecorded: set[tuple[int, str]] = set()


def unchanged(task, *also: str):
    """The task's row, if nothing moved its queued run since ``task`` was read (and the fields ``also``).

    The token swap of recovery and take-over: of two processes acting on one
    row, one wins; a row claimed, stopped, edited or taken meanwhile is left.
    """
    fields = ("status", "run_token", "spooler_node", "spooler_id", *also)
    return Task.objects.filter(pk=task.pk, **{name: getattr(task, name) for name in fields})


def respool_missing(
    spool_dir: str,
    spool: Callable[[int, str, str, datetime | None], str],
    node: str,
    periodic: bool = False,
) -> int:
    """Spool again this node's pending tasks that have no spool entry; return how many.

    Runs in a spooler process at its start and on its recovery timer
    (``periodic``; ``spooler/uwsgi_handler.py`` passes its spool directory,
    its backend's ``spool`` and ``node``): see :func:`respool`.
    ``manage.py respool_tasks`` does the same from outside.
    """
    return len(respool(spool_dir, spool, node=node, settle=periodic))


@dataclass
class Respooled:
    """One task whose spool entry was missing (see :func:`respool`)."""

    task_id: int
    name: str
    status: str
    #: When the new entry runs (aware UTC); None or a past time means at once.
    at: datetime | None
    #: The new entry's path ("" on a dry run).
    path: str = ""


def due_time(task: Task, now: datetime) -> datetime:
    """When a pending task's lost entry must run: its stored next run, else Start's rule.

    A stored ``next_datetime`` in the past gives one run at once (the missed
    runs are coalesced, as a surviving spool file would have run once).
    """
    if task.next_datetime is not None:
        return task.next_datetime
    run_at, _anchor = schedule.first_run(
        task.scheduling, task.repetition_period or None, task.repetition_rate, now, schedule.project_tz()
    )
    return run_at


def respool(
    spool_dir: str,
    spool: Callable[[int, str, str, datetime | None], str],
    *,
    node: str | None = None,
    adopt: Iterable[str] = (),
    dry_run: bool = False,
    settle: bool = False,
) -> list[Respooled]:
    """Give a new spool entry to each task of this node whose entry is not in ``spool_dir``.

    Tasks considered: SCHEDULED or SPOOLED, and STARTED ones whose periodic
    chain has a next run (``run_token`` set), whose ``spooler_node`` is this
    node (``host:spool_dir``, see :func:`taskmanager.spoolfiles.node_matches`) or one of the
    ``adopt`` node strings (to take over the tasks of a node that is gone).
    An entry is missing when the file recorded in ``spooler_id`` is not in
    ``spool_dir`` (:func:`taskmanager.spoolfiles.is_live`), or, with no file
    recorded (Start's entry due at once), when no file of ``spool_dir`` due
    now carries the task's token (:func:`taskmanager.spoolfiles.due_tokens`). A task whose
    ``payload_version`` is newer than this code's is left as it is (one log line).

    Each missing entry gets a new run token by one conditional UPDATE on the
    old token and old ``spooler_id``, then ``spool(task_id, token, trigger,
    at)`` writes the entry: of two processes recovering at once only one
    wins, and the old entry, should it reappear, is stale and runs nothing.
    The new entry runs at the task's stored next run (:func:`due_time`).

    :param spool: the function writing one entry, returning its path
        (``UwsgiBackend.spool`` inside uWSGI, a file writer outside).
    :param node: the node string recorded on the respooled tasks; default
        ``host:abspath(spool_dir)``.
    :param settle: for a pass while the node runs (the periodic recovery): a
        task with no entry recorded (``spooler_id`` "", an entry being handed
        over by Start, an edit or a respool right now) is respooled only when
        the previous such pass of this process saw it so with the same token.
        Without it (at a spooler's start, ``respool_tasks``) such a task is
        respooled once its entry has not appeared within
        :data:`HANDOVER_SECONDS` (:func:`_handed_over_meanwhile`).
    :returns: the tasks respooled (or that would be, with ``dry_run``).
    """
    node = node or spoolfiles.node_id(spool_dir)
    adopt = set(adopt)
    now = dbclock.now()
    # A task of a queue this node does not serve is left to the nodes serving it.
    candidates = Task.objects.queued().filter(queue__in=served_queues()).order_by("pk")
    missing = []
    unrecorded = set()
    due = None
    newer = 0
    for task in candidates:
        if not (spoolfiles.node_matches(task.spooler_node, spool_dir) or task.spooler_node in adopt):
            continue
        if spoolfiles.is_live(task.spooler_id, spool_dir):
            continue
        if not task.spooler_id:
            # Start records no spool file for an entry due at once (one
            # durable commit, issue 17): it is found by its token among the
            # files due now, read once per pass, after the candidates (an
            # entry claimed meanwhile has a row that the UPDATE below misses).
            if due is None:
                due = spoolfiles.due_tokens(spool_dir, time.time() + 1)
            if _entry_due(task, due):
                continue
        if task.payload_version > spoolfiles.PAYLOAD_VERSION:
            newer += 1  # queued by a newer node (rolling deploys): left to a node that knows its version
            continue
        if settle and not task.spooler_id:
            unrecorded.add((task.pk, task.run_token))
            if (task.pk, task.run_token) not in _unrecorded:
                continue  # maybe being handed over: the next pass decides
        missing.append(task)
    if not settle:
        missing = _handed_over_meanwhile(missing, spool_dir)
    done = []
    for task in missing:
        item = _respool_one(task, now, spool, node, dry_run)
        if item is not None:
            done.append(item)
    if newer:
        logger.warning(
            "taskmanager recovery: left %s pending task(s) of a newer payload version than this node's (%s).",
            newer,
            spoolfiles.PAYLOAD_VERSION,
        )
    if settle:
        _unrecorded.clear()
        _unrecorded.update(unrecorded)
    return done


#: Seconds a pass that cannot wait for the next one (:func:`respool` without
#: ``settle``) gives entries being handed over to appear (see below).
HANDOVER_SECONDS = 1.0


def _handed_over_meanwhile(tasks: list[Task], spool_dir: str) -> list[Task]:
    """The ``tasks`` whose entry is still missing once those being handed over right now have appeared.

    Start (and an edit, a respool) commits the row first and writes its spool
    entry on commit: a pass that read the row between the two finds no entry
    for it. The periodic pass waits for its next pass to decide
    (``settle``); the pass at a spooler's start, which should not leave a
    lost entry a whole period, looks again at the spool directory for at
    most :data:`HANDOVER_SECONDS`, as long as an entry with no file recorded
    is missing (else a Start's run would be respooled, its first entry
    consumed as stale, and its report would say "recovery").
    """
    deadline = time.monotonic() + HANDOVER_SECONDS
    while any(not task.spooler_id for task in tasks) and time.monotonic() < deadline:
        time.sleep(0.02)
        due = spoolfiles.due_tokens(spool_dir, time.time() + 1)
        tasks = [task for task in tasks if task.spooler_id or not _entry_due(task, due)]
    return tasks


def _entry_due(task: Task, due: set[tuple[int, str]]) -> bool:
    """Whether a file among ``due`` (:func:`taskmanager.spoolfiles.due_tokens`) carries the task's queued run."""
    return (task.pk, task.run_token) in due


def _respool_one(task: Task, now: datetime, spool, node: str, dry_run: bool) -> Respooled | None:
    """Give ``task`` a new token and a new entry (see :func:`respool`); None when it cannot or another process did."""
    try:
        at = due_time(task, now)
    except schedule.ScheduleError as exc:
        logger.error("Task %s cannot be respooled: %s", task.pk, exc)
        return None
    item = Respooled(task.pk, task.name, task.status, at)
    if dry_run:
        return item
    token = new_token()
    won = unchanged(task).update(
        run_token=token,
        next_datetime=at,
        spooler_node=node,
        spooler_id="",
        payload_version=spoolfiles.PAYLOAD_VERSION,
    )
    if not won:
        return None  # another process recovered, claimed, stopped or edited it meanwhile
    try:
        item.path = spool(task.pk, token, Report.Trigger.RECOVERY, at if at > now else None)
    except Exception:  # noqa: BLE001 - the next recovery retries (entry still missing)
        logger.exception("Could not respool task %s", task.pk)
        return None
    Task.objects.filter(pk=task.pk, run_token=token).update(spooler_id=item.path)
    logger.warning(
        "taskmanager recovery: task %s (%s) had no spool entry; respooled for %s.",
        task.pk,
        task.name,
        at.isoformat() if at > now else "now",
    )
    return item

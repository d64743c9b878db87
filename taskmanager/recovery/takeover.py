"""Taking over pending runs: the task row is the queue of record, a spool file only a hint.

A pending run is a row: a Scheduled or Spooled task, or a queued "run now"
(``Task.run_now_token``). The node recorded on it (``Task.spooler_node``) is
where its spool file was written, a hint that makes it run there with low
latency. The periodic pass of every spooler node (:func:`take_over`) takes

* at once, a row with no node at all: started through a web-only node, or
  through a node that does not serve the task's queue, or refused by the
  claim of such a node;
* a row of another node that is overdue by more than
  ``TASKMANAGER_TAKEOVER_GRACE`` seconds on the database's clock (its next
  run, or its queued "run now"): a dead node, a stuck one, one whose
  spoolers are all busy;

among the tasks of the queues this node serves (``TASKMANAGER_SERVE_QUEUES``),
at most ``TASKMANAGER_TAKEOVER_BATCH`` per pass. Each row is taken by one
conditional UPDATE that swaps its tokens (the claim's guard): of two nodes
taking it at once one wins, and the old node's files, if that node comes
back, carry tokens that are no longer the task's and run nothing. The row is
then spooled here for its stored next run: a past one runs once at once, the
missed slots coalesced (the claim goes on at the next slot of the grid).
Nothing judges whether a node is dead, and nothing relies on locks that
outlive a statement (LISTEN/NOTIFY, advisory locks: PgBouncer in transaction
mode breaks them). Imports neither the runner nor a backend.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Q

from .. import dbclock, schedule
from ..conf import app_settings, served_queues
from ..models import Report, Task, new_token
from ..spoolfiles import PAYLOAD_VERSION
from .respool import due_time, unchanged

logger = logging.getLogger("taskmanager.recovery")

SpoolFn = Callable[[int, str, str, datetime | None], str]


def waiting_here(node: str, now: datetime):
    """The rows of no node, or overdue on another node, of the queues this node serves (any payload version)."""
    waiting = Q(status__in=Task.PENDING) | (Q(status=Task.Status.IDLE) & ~Q(run_now_token=""))
    due = Q(spooler_node="")
    grace = app_settings.TAKEOVER_GRACE
    if grace is not None:
        late = timedelta(seconds=float(grace))
        # next_datetime is written from dbclock.now(); run_now_at by the
        # database's DbNow() (actions.run_now, TaskQuerySet.end_run): each is
        # compared with the clock it was written by.
        due |= Q(status__in=Task.PENDING, next_datetime__lt=now - late)
        queued_before = ExpressionWrapper(dbclock.DbNow() - late, output_field=DateTimeField())
        due |= ~Q(run_now_token="") & (Q(run_now_at__lt=queued_before) | Q(run_now_at__isnull=True))
    return Task.objects.filter(waiting, due, queue__in=served_queues()).exclude(spooler_node=node)


def takeable(node: str, now: datetime):
    """The rows this node's pass takes (see the module docstring), most overdue first, at most a batch.

    A row queued by a newer node (rolling deploys: its ``payload_version``
    is above this code's) is left to a node that knows its version.
    """
    return (
        waiting_here(node, now)
        .filter(payload_version__lte=PAYLOAD_VERSION)
        .only(
            "pk",
            "name",
            "status",
            "run_token",
            "run_now_token",
            "spooler_node",
            "spooler_id",
            "next_datetime",
            "scheduling",
            "repetition_period",
            "repetition_rate",
        )
        .order_by("next_datetime", "pk")[: int(app_settings.TAKEOVER_BATCH)]
    )


def take_over(spool: SpoolFn, node: str, now: datetime | None = None) -> int:
    """Take the pending rows of no node, or overdue on another node, and spool them here; return how many.

    ``spool(task_id, token, trigger, at)`` writes one entry of this node
    (the spooler's backend ``spool``), ``node`` is this node's string.
    """
    now = now or dbclock.now()
    _log_newer(node, now)
    taken = 0
    for task in takeable(node, now):
        pending = task.status in Task.PENDING
        changes = {"spooler_node": node, "spooler_id": "", "payload_version": PAYLOAD_VERSION}
        if pending:
            try:
                at = due_time(task, now)
            except schedule.ScheduleError as exc:
                logger.error("Task %s cannot be taken over: %s", task.pk, exc)
                continue
            changes.update(run_token=new_token(), next_datetime=at)
        if task.run_now_token:
            changes.update(run_now_token=new_token(), run_now_at=dbclock.DbNow())
        won = unchanged(task, "run_now_token").update(**changes)
        if not won:
            continue  # claimed, stopped, edited or taken by another node meanwhile
        taken += 1
        _spool_taken(task, changes, spool, now)
    return taken


def _log_newer(node: str, now: datetime) -> None:
    """Log in one line how many rows this pass would take but leaves: their payload version is newer."""
    left = waiting_here(node, now).filter(payload_version__gt=PAYLOAD_VERSION).count()
    if left:
        logger.warning(
            "taskmanager: left %s pending task(s) of a newer payload version than this node's (%s) "
            "to a node that knows it.",
            left,
            PAYLOAD_VERSION,
        )


def _spool_taken(task: Task, changes: dict, spool: SpoolFn, now: datetime) -> None:
    """Spool here the entries of a row just taken; log one line. A failed spool is left to the next pass."""
    try:
        if "run_token" in changes:
            at = changes["next_datetime"]
            # A row of no node was never spooled: its run is its Start's.
            trigger = Report.Trigger.RECOVERY if task.spooler_node else Report.Trigger.START
            path = spool(task.pk, changes["run_token"], trigger, at if at > now else None)
            Task.objects.filter(pk=task.pk, run_token=changes["run_token"]).update(spooler_id=path)
        if "run_now_token" in changes:
            spool(task.pk, changes["run_now_token"], Report.Trigger.RUN_NOW, None)
    except Exception:  # noqa: BLE001 - the row records this node: its respool (lost entries) retries
        logger.exception("Could not spool task %s after taking it over", task.pk)
        return
    if task.spooler_node:
        logger.warning(
            "taskmanager: task %s (%s) taken over from %s (due %s); spooled on this node.",
            task.pk,
            task.name,
            task.spooler_node,
            task.next_datetime.isoformat() if task.next_datetime else "now",
        )
    else:
        logger.info(
            "taskmanager: task %s (%s) taken from the queue; spooled on this node.", task.pk, task.name
        )

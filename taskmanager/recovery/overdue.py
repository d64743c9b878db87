"""Runs that silently did not happen: one "overdue" notice per missed slot, from any node.

A pending task (``Task.PENDING``) whose ``next_datetime`` is more than
``TASKMANAGER_OVERDUE_GRACE`` seconds in the past was not run: its entry
is lost, its node is dead, its run-now token is stuck... The periodic pass
of every node looks for such tasks; one conditional UPDATE of
``Task.overdue_notified_at`` per task decides which process sends the
notice, so two spoolers or two nodes never both send it. The mark counts
for the slot it was set for: a later ``next_datetime`` that is missed
again is notified again. The run that comes at last clears it and sends
the "recovered" notice (``notifications.overdue_recovered``).
"""

import logging
from datetime import datetime

from django.db.models import F, Q

from .. import dbclock
from ..models import Task
from ..notifications import send_overdue

logger = logging.getLogger("taskmanager.recovery")

#: Tasks one pass notifies at most (the next pass takes the rest).
BATCH = 100


def notify_overdue(now: datetime | None = None) -> int:
    """Mark and notify the overdue tasks not yet notified for their slot; return how many this call marked."""
    now = now or dbclock.now()
    unmarked = Q(overdue_notified_at__isnull=True) | Q(overdue_notified_at__lt=F("next_datetime"))
    candidates = list(Task.objects.overdue(now).filter(unmarked).select_related("command")[:BATCH])
    marked = 0
    for task in candidates:
        # The slot seen is part of the condition: a task that ran or moved
        # on meanwhile is not marked; of two passes, one marks it.
        won = (
            Task.objects.filter(pk=task.pk, status__in=Task.PENDING, next_datetime=task.next_datetime)
            .filter(unmarked)
            .update(overdue_notified_at=now)
        )
        if not won:
            continue
        marked += 1
        logger.warning(
            "taskmanager: task %s (%s on %s) is overdue: its run due at %s did not happen.",
            task.pk,
            task.name,
            task.spooler_node or "-",
            task.next_datetime.isoformat(),
        )
        if task.notify:
            send_overdue(task)
    return marked

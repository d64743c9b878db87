"""Lost "run now" entries: a queued run-now token with no spool entry behind it is spooled again.

``actions.run_now`` sets ``Task.run_now_token`` (and ``run_now_at``, the
database's now) and spools an entry (trigger "run now") on the node of the
web process (its backend's ``node()``); the claim clears the token, or
leaves it while the task runs and the run's end spools the entry again
(``runner.claim.respool_deferred``; the end's UPDATE sets ``run_now_at``
again, ``TaskQuerySet.end_run``). When the entry is lost (a deleted file, a
failed spool at the run's end, a spool directory emptied while uWSGI was
down), nothing else would run it and every later Run now would answer
"already queued": the periodic pass spools it again (:func:`respool_run_now`)
at its first pass once the token is older than :data:`WRITE_MARGIN`, so
"already queued" lasts at most one recovery period (plus that margin, when
the entry was lost within it); the pass at a spooler's start does it too.
Imports neither the runner nor a backend.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Q

from .. import dbclock, spoolfiles
from ..conf import served_queues
from ..models import Report, Task

logger = logging.getLogger("taskmanager.recovery")

#: How long after ``run_now_at`` an entry may still be on its way to the spool
#: directory: the web process (or the run's end) writes it right after the
#: token's UPDATE. Compared on the database's clock, which set ``run_now_at``.
WRITE_MARGIN = timedelta(seconds=5)


def respool_run_now(
    spool_dir: str,
    spool: Callable[[int, str, str, datetime | None], str],
    node: str,
) -> int:
    """Spool again the "run now" entries of this node that are gone; return how many.

    Tasks considered: ``run_now_token`` set, not STARTED (a running task's
    entry is deferred to its end on purpose), whose ``spooler_node`` is this
    node or empty (``actions.run_now`` records on an idle task the node of
    the web process, where the entry goes; a pending task keeps the node of
    its run), and whose token waits since more than :data:`WRITE_MARGIN`
    (``run_now_at``; none: a token from before it was recorded), so an
    entry being written now is not doubled. An entry is gone when no spool
    file of ``spool_dir`` due now carries the token; it is spooled again
    (trigger "run now", at once) if the task still has that token, still
    waits since before the margin (a run that ended meanwhile restarts the
    wait) and is still not running. Spooling one twice is harmless anyway: the first
    claim clears the token, the second finds it stale.
    """
    settled = ExpressionWrapper(dbclock.DbNow() - WRITE_MARGIN, output_field=DateTimeField())
    # Waiting since before the margin (none recorded: a token from before
    # run_now_at existed). Not compared for equality: SQLite's DbNow() and
    # Django write datetimes with different precision.
    waiting_long = Q(run_now_at__isnull=True) | Q(run_now_at__lt=settled)
    candidates = [
        task
        for task in Task.objects.exclude(run_now_token="")
        .exclude(status=Task.Status.STARTED)
        .filter(queue__in=served_queues())
        .filter(waiting_long)
        .only("pk", "name", "run_now_token", "spooler_node")
        .order_by("pk")
        if not task.spooler_node
        or task.spooler_node == node
        or spoolfiles.node_matches(task.spooler_node, spool_dir)
    ]
    if not candidates:
        return 0
    # Read after the candidates: an entry claimed meanwhile has cleared its
    # token, which the check below sees.
    waiting = spoolfiles.due_tokens(spool_dir, time.time() + 1)
    done = 0
    for task in candidates:
        if (task.pk, task.run_now_token) in waiting:
            continue
        if (
            not Task.objects.filter(waiting_long, pk=task.pk, run_now_token=task.run_now_token)
            .exclude(status=Task.Status.STARTED)
            .exists()
        ):
            continue  # claimed, stopped, deferred, or behind a run that ended meanwhile
        try:
            spool(task.pk, task.run_now_token, Report.Trigger.RUN_NOW, None)
        except Exception:  # noqa: BLE001 - the next pass retries (the entry is still missing)
            logger.exception("Could not respool the run now of task %s", task.pk)
            continue
        logger.warning(
            "taskmanager recovery: task %s (%s) had no spool entry for its run now; respooled.",
            task.pk,
            task.name,
        )
        done += 1
    return done

"""Lost "run now" entries: a queued run-now token with no spool entry behind it is spooled again.

``actions.run_now`` sets ``Task.run_now_token`` and spools an entry (trigger
"run now") on the node of the web process (its backend's ``node()``); the
claim clears the token, or leaves it while the task runs and the run's end
spools the entry again (``runner.claim.respool_deferred``). When the entry is
lost (a deleted file, a failed spool at the run's end), nothing else would
run it and every later Run now would answer "already queued": the periodic
pass spools it again (:func:`respool_run_now`). Imports neither the runner
nor a backend.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime

from .. import spoolfiles
from ..conf import served_queues
from ..models import Report, Task

logger = logging.getLogger("taskmanager.recovery")

#: (task id, run-now token) the last pass of this process found with no entry.
_missing: set[tuple[int, str]] = set()


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
    its run). An
    entry is gone when no spool file of ``spool_dir`` due now carries the
    token; it is spooled again (trigger "run now", at once) only when the
    previous pass of this process saw it gone with the same token, so an
    entry being written is not doubled. Spooling one twice is harmless
    anyway: the first claim clears the token, the second finds it stale.
    """
    candidates = [
        task
        for task in Task.objects.exclude(run_now_token="")
        .exclude(status=Task.Status.STARTED)
        .filter(queue__in=served_queues())
        .only("pk", "name", "run_now_token", "spooler_node")
        .order_by("pk")
        if not task.spooler_node
        or task.spooler_node == node
        or spoolfiles.node_matches(task.spooler_node, spool_dir)
    ]
    missing = set()
    done = 0
    if candidates:
        waiting = spoolfiles.due_tokens(spool_dir, time.time() + 1)
        for task in candidates:
            key = (task.pk, task.run_now_token)
            if key in waiting:
                continue
            missing.add(key)
            if key not in _missing:
                continue  # maybe being written: the next pass decides
            if (
                not Task.objects.filter(pk=task.pk, run_now_token=task.run_now_token)
                .exclude(status=Task.Status.STARTED)
                .exists()
            ):
                continue  # claimed, stopped or deferred meanwhile
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
            missing.discard(key)
            done += 1
    _missing.clear()
    _missing.update(missing)
    return done

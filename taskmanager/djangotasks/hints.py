"""The spool hints of enqueued rows: written once their transaction commits, then the busy spoolers woken once.

A hint is a spool entry of task 0 whose token is the row's id (trigger
``enqueue``); it only makes a spooler claim the best due row at once (the
row is the queue of record, :mod:`taskmanager.djangotasks`). Two facts of
uWSGI shape this module:

* **A hint is written after the commit** (``transaction.on_commit``): a
  spooler reading it before would find no row. The calls enqueued in one
  transaction share one on-commit callback (:func:`after_commit`), which
  writes their hints in order.
* **uWSGI's** ``uwsgi.spool()`` **wakes idle spooler processes only.** A
  spooler running a function scans the spool directory again once free
  only if it was signalled meanwhile; its current scan never sees the files
  written after it began, so without a signal a hint written while every
  spooler is busy waits for the next ``spooler-frequency`` tick (1 to 30 s:
  the calls of about 1 s among 50). So after writing a transaction's hints
  the callback wakes the spoolers of this node (``wake()``: one SIGUSR1
  each; only where this process sees them, a uWSGI instance with its own
  spooler), once per transaction, not per hint: each signal adds a scan.
  Not for hints due later (``run_after``): their spooler takes them at
  their time. An admin Start wakes the spoolers the same way
  (``taskmanager/actions.py``).

A process with no spooler to hint (a shell, a web-only node) writes nothing:
a spooler node's periodic pass hints its rows (``recovery/results.py``).
"""

import logging
import threading

from django.db import transaction

from ..models import Report
from ..spooler import SpoolerUnavailable, get_backend

logger = logging.getLogger("taskmanager.spooler")

#: The trigger of a spool hint of a django.tasks row (``spoolfiles.make_entry``'s
#: task id is 0, its token the row's id).
HINT_TRIGGER = Report.Trigger.ENQUEUE

# The open batch of each database alias, per thread (Django's connections are per thread).
_local = threading.local()


class _Batch:
    """The hints of one transaction's calls: written, then the spoolers woken, by one on-commit callback."""

    def __init__(self):
        self.rows: list[tuple[str, object]] = []

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        written = [run_after for pk, run_after in rows if hint(pk, run_after)]
        if any(run_after is None for run_after in written):
            get_backend().wake()


def after_commit(result_id: str, run_after, using: str) -> None:
    """Write the hint of the row ``result_id`` once the current transaction on ``using`` commits (at once outside one)."""
    batches = _local.__dict__.setdefault("batches", {})
    batch = batches.get(using)
    connection = transaction.get_connection(using)
    # A batch whose callback is gone (its transaction committed or rolled back,
    # or the savepoint it was registered in) takes no more rows: a new one does.
    if batch is None or not any(item[1] == batch.flush for item in connection.run_on_commit):
        batch = batches[using] = _Batch()
        batch.rows.append((result_id, run_after))
        transaction.on_commit(batch.flush, using=using)  # runs now outside a transaction
    else:
        batch.rows.append((result_id, run_after))


def hint(result_id: str, run_after=None) -> bool:
    """Write the spool hint of a committed row; without a spooler here, leave the row to a node's pass."""
    try:
        get_backend().spool(0, result_id, HINT_TRIGGER, run_after)
    except SpoolerUnavailable as exc:
        logger.info("taskmanager: task result %s stored without a spool hint (%s).", result_id, exc)
        return False
    return True

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

A process with no uWSGI to spool with (a shell, a cron job, a management
command) writes the hint straight into the spool directory of each live
spooler node **of this machine** it may write to (:func:`local_spool_dirs`;
each, since which queues a node serves is its settings', not the database's:
a node that serves none of the row's claims nothing, at one SELECT): the same
host name and identity (boot and PID namespace, ``processes.node_identity``)
as the node's last heartbeat, an absolute directory this process's user owns
and may write (the spooler's user: a file of another user's it might not
read). The spoolers find the file at their next scan (``spooler-frequency``,
1 s as documented; no signal reaches them from here). Elsewhere (a web-only
node, another machine, another user) it writes nothing: a spooler node's
periodic pass hints its rows (``recovery/results.py``), within
``TASKMANAGER_RECOVERY_SECONDS``.
"""

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable

from django.db import DatabaseError, transaction

from .. import dbclock, processes, spoolfiles
from ..models import Report, SpoolerHeartbeat
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
        directories = functools.cache(local_spool_dirs)  # read once per batch, at its first need
        written = [run_after for pk, run_after in rows if hint(pk, run_after, directories)]
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


def hint(result_id: str, run_after=None, directories: Callable[[], list[str]] | None = None) -> bool:
    """Write the spool hint of a committed row; without a spooler here, into a local node's directory, else none.

    Returns whether a spooler of this process's instance was given it (and may be woken).
    ``directories``: what lists the local spool directories (:func:`local_spool_dirs`, by
    default), memoized by a batch's caller so that they are read once a batch, not once a row.
    """
    try:
        get_backend().spool(0, result_id, HINT_TRIGGER, run_after)
    except SpoolerUnavailable as exc:
        at = dbclock.to_local(run_after) if run_after is not None else None
        written = 0
        for directory in (directories or local_spool_dirs)():
            try:
                spoolfiles.write(directory, spoolfiles.make_entry(0, result_id, HINT_TRIGGER, at), at)
                written += 1
            except (OSError, spoolfiles.SpoolFileError) as write_exc:
                logger.info("taskmanager: task result %s: no spool hint in %s (%s).", result_id, directory, write_exc)
        if not written:
            logger.info("taskmanager: task result %s stored without a spool hint (%s).", result_id, exc)
        return False
    return True


def local_spool_dirs() -> list[str]:
    """The spool directories of the live spooler nodes of this machine that this process may write into."""
    host, identity = socket.gethostname(), processes.node_identity()
    try:
        nodes = list(SpoolerHeartbeat.objects.live().values_list("node", "identity"))
    except DatabaseError:
        return []
    directories = []
    for node, node_identity in sorted(nodes):
        node_host, directory = spoolfiles.split_node(node)
        if node_host != host or not identity or node_identity != identity or not os.path.isabs(directory):
            continue
        try:
            owner = os.stat(directory).st_uid
        except OSError:
            continue
        if owner == os.geteuid() and os.access(directory, os.W_OK | os.X_OK):
            directories.append(directory)
    return directories

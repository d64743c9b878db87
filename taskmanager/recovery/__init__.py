"""Recovery after crashes and restarts: the passes a spooler runs at its start and on its timer.

Two independent parts, both safe to run twice or from two spooler processes
at once (every change is a conditional UPDATE):

* ``recover_interrupted_runs()``: reports left running by a supervisor that is
  gone (evidence: its pid and start time on this host, or a stale heartbeat)
  are closed as "interrupted"; leftover process groups are killed.
* ``respool_missing()``: tasks SCHEDULED/SPOOLED on this node whose spool entry
  is gone (spool directory emptied, reload, a next run that could not be
  spooled) are spooled again for their next correct slot.
* ``sweep_superseded()`` (periodic only): future entries of this node whose
  token is no longer current are deleted, a bounded batch per pass.
* ``move_aside_unreadable()`` (periodic only): spool files no spooler can
  read (empty, broken header) are moved into ``unreadable/``.
* ``take_over()``: pending rows of no node, or overdue by more than
  ``TASKMANAGER_TAKEOVER_GRACE`` on another node, in the queues this node
  serves, are taken (a token swap) and spooled here: the database is the
  queue of record, a spool file only a hint.
* ``hint_waiting_results()`` (also at spooler start): django.tasks rows due in the
  queues this node serves that no waiting spool hint covers (enqueued where
  no spooler is, their hint consumed elsewhere or lost) get a hint here.
* ``notify_overdue()`` (periodic only): pending tasks of any node whose next
  execution is more than ``TASKMANAGER_OVERDUE_GRACE`` late get one
  "overdue" notice.
* ``retention.prune_over_limit()`` and ``history.prune_over_limit()``
  (periodic only): finished reports beyond ``TASKMANAGER_REPORTS_KEPT`` and
  history rows beyond ``TASKMANAGER_HISTORY_KEPT`` per task are deleted (the
  end of a run in a spooler with this pass prunes nothing; without it, at
  every ``retention.PRUNE_EVERY``-th run of its task).
* ``retention.prune_results()`` (periodic only): django.tasks results
  finished more than ``TASKMANAGER_RESULTS_DAYS`` ago are deleted.
* ``audit.prune()`` (periodic only): audit entries older than
  ``TASKMANAGER_AUDIT_DAYS`` are deleted (one statement).

The periodic pass is the list :func:`periodic_steps`: the work of one node on
its own entries now; work on any node's overdue entries goes there too.
The parts live in :mod:`.interrupted`, :mod:`.takeover`, :mod:`.respool`, :mod:`.runnow`,
:mod:`.results`, :mod:`.sweep` and :mod:`.overdue`; this module runs them, logs, and never raises. It imports neither the runner nor a backend:
the spooler passes what they would give (``spooler/uwsgi_handler.py``).
"""

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import close_old_connections

from .. import audit, history, retention
from ..conf import app_settings
from .interrupted import close_interrupted, interruption_evidence, kill_leftovers, recover_interrupted_runs
from .overdue import notify_overdue
from .respool import Respooled, due_time, respool, respool_missing
from .results import hint_waiting_results
from .runnow import respool_run_now
from .sweep import move_aside_unreadable, sweep_superseded
from .takeover import take_over

__all__ = [
    "Respooled",
    "close_interrupted",
    "due_time",
    "hint_waiting_results",
    "interruption_evidence",
    "kill_leftovers",
    "move_aside_unreadable",
    "on_spooler_start",
    "notify_overdue",
    "on_timer",
    "periodic_steps",
    "recover_interrupted_runs",
    "respool",
    "respool_missing",
    "respool_run_now",
    "sweep_superseded",
    "take_over",
]

logger = logging.getLogger("taskmanager.recovery")


SpoolFn = Callable[[int, str, str, datetime | None], str]


def periodic_steps(
    supervising: Callable[[], int | None] | None = None,
    spool_dir: str | None = None,
    spool: SpoolFn | None = None,
    node: str | None = None,
) -> list:
    """The steps of the periodic pass, as ``[(function, args)]``.

    Always: close interrupted runs. With ``spool_dir`` (and ``spool``,
    ``node``: the node's own spooler): take over the rows of no node and the
    overdue ones of other nodes (:func:`take_over`), respool this node's lost entries and
    lost "run now" entries (:func:`respool_run_now`), hint the due
    django.tasks rows no waiting hint covers (:func:`hint_waiting_results`), then delete a batch
    of its superseded future entries (``TASKMANAGER_SPOOL_SWEEP_BATCH``
    spool files read at most), and move aside its files no spooler can read
    (empty, broken) older than a minute.
    Last, always: notify the overdue tasks of any node (``notify_overdue``),
    prune the reports beyond ``TASKMANAGER_REPORTS_KEPT`` per task and the run history beyond
    ``TASKMANAGER_HISTORY_KEPT``, the django.tasks results older than
    ``TASKMANAGER_RESULTS_DAYS``, and
    delete the audit entries older than ``TASKMANAGER_AUDIT_DAYS``.
    """
    steps = [(recover_interrupted_runs, (supervising,))]
    if spool_dir is not None:
        steps.append((take_over, (spool, node)))
        steps.append((respool_missing, (spool_dir, spool, node, True)))
        steps.append((respool_run_now, (spool_dir, spool, node)))
        steps.append((hint_waiting_results, (spool_dir, spool)))
        steps.append((sweep_superseded, (spool_dir, int(app_settings.SPOOL_SWEEP_BATCH))))
        steps.append((move_aside_unreadable, (spool_dir,)))
    steps.append((notify_overdue, ()))
    # Old reports beyond TASKMANAGER_REPORTS_KEPT, history rows beyond TASKMANAGER_HISTORY_KEPT
    # (a spooler's runs leave them to this pass: retention.periodic_pass_prunes).
    steps.append((retention.prune_over_limit, ()))
    steps.append((history.prune_over_limit, ()))
    # django.tasks results finished more than TASKMANAGER_RESULTS_DAYS ago.
    steps.append((retention.prune_results, ()))
    # Audit entries older than TASKMANAGER_AUDIT_DAYS: one DELETE by date.
    steps.append((audit.prune, ()))
    return steps


def on_timer(
    supervising: Callable[[], int | None] | None = None,
    spool_dir: str | None = None,
    spool: SpoolFn | None = None,
    node: str | None = None,
) -> None:
    """The periodic pass (a uWSGI timer in an idle spooler): :func:`periodic_steps`; never raise."""
    _run(periodic_steps(supervising, spool_dir, spool, node))


def _run(steps) -> None:
    """Run each step, logging what it handled; a failing step does not stop the others."""
    close_old_connections()
    for step, args in steps:
        try:
            count = step(*args)
            if count:
                logger.warning("taskmanager recovery: %s handled %d task(s).", step.__name__, count)
        except Exception:  # noqa: BLE001 - the next pass tries again; the spooler must go on
            logger.exception("taskmanager recovery step %s failed", step.__name__)
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
    (:func:`respool_missing`, and the queued "run now" ones:
    :func:`respool_run_now`; a spool directory on a tmpfs loses them all at a
    reboot, and with ``TASKMANAGER_RECOVERY_SECONDS = 0`` no periodic pass
    would), the pending rows of no node taken over, and the
    due django.tasks rows no waiting hint covers hinted
    (:func:`hint_waiting_results`: rows enqueued where no spooler was would
    otherwise wait a whole ``TASKMANAGER_RECOVERY_SECONDS``).
    """
    steps = [(recover_interrupted_runs, (supervising,))]
    if spool_dir is not None:
        steps.append((respool_missing, (spool_dir, spool, node)))
        steps.append((take_over, (spool, node)))
        # After the take-over, as in the periodic pass: a row of no node it
        # took has a new token and entry, and respool_run_now leaves it alone.
        steps.append((respool_run_now, (spool_dir, spool, node)))
        # Rows stored where no spooler was run now, not a recovery interval later.
        steps.append((hint_waiting_results, (spool_dir, spool)))
    _run(steps)

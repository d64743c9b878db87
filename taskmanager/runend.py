"""What follows the end of a run, however it ended: its history, the pruning of old reports, the notice.

Shared by the runner (:mod:`taskmanager.runner.outcome`, a run that ended)
and recovery (:mod:`taskmanager.recovery.interrupted`, a run closed as
interrupted), so that both leave the same traces. None of it may change the
run's outcome: every failure is logged (on the caller's logger) and swallowed.
"""

import logging
import time
from datetime import datetime

from django.db import transaction

from . import history
from .db import write_db
from .notifications import notify_run_end
from .retention import prune_reports, prune_small_reports


def record(
    task_id: int,
    started: datetime,
    now: datetime,
    result: str,
    log: logging.Logger,
    prune: bool = True,
    savepoint: bool = True,
    **kw,
) -> bool:
    """Write the run's history and (with ``prune``) prune old small reports, inside the caller's transaction.

    Return whether old reports are left for :func:`after_commit` to prune.
    The runner prunes only where no periodic pass does, at every
    :data:`taskmanager.retention.PRUNE_EVERY`-th run of a task
    (:func:`taskmanager.retention.prune_due`); else the periodic pass does
    (:func:`taskmanager.retention.prune_over_limit`).
    Without ``savepoint`` the history row and the pruning go in the
    caller's transaction without a savepoint of their own: a failure
    raises, and the caller must roll back and record the end again with
    ``savepoint`` (the runner does, so that its end pays for no
    SAVEPOINT/RELEASE pair, issue 17).
    ``kw`` goes to :func:`taskmanager.history.record_run` (``update_task``, ``end_kind``).
    """
    # The run's history and the pruning of old reports share the caller's
    # commit, in a savepoint: neither may change the run's outcome. If it
    # fails (or at a run that does not prune), the history is written alone;
    # pruning then waits for the commit (prune_reports logs its own failure).
    if not savepoint:
        history.record_run(task_id, started, now, result, prune=prune, **kw)
        return prune_small_reports(task_id) if prune else False
    if prune:
        try:
            with transaction.atomic(using=write_db()):
                history.record_run(task_id, started, now, result, **kw)
                return prune_small_reports(task_id)
        except Exception:  # noqa: BLE001 - see above
            log.debug("History or pruning failed for task %s; retrying apart", task_id, exc_info=True)
    try:
        with transaction.atomic(using=write_db()):
            history.record_run(task_id, started, now, result, prune=prune, **kw)
    except Exception:  # noqa: BLE001 - the chart's history must never change the run's outcome
        log.exception("Could not record the run history of task %s", task_id)
    return prune


def after_commit(
    task_id: int, more_to_prune: bool, log: logging.Logger, *, task=None, report=None, marks=None
) -> None:
    """After the end's commit: prune old reports with big logs if any are left, then notify.

    Big logs are deleted chunk by chunk, each chunk its own transaction. The
    notice goes out when ``task`` and ``report`` (the closed run) are given.
    ``marks`` (the runner's phase marks) gets "pruned" once pruning is done.
    """
    if more_to_prune:
        try:
            prune_reports(task_id)
        except Exception:  # noqa: BLE001 - pruning must never change the run's outcome
            log.exception("Could not prune the reports of task %s", task_id)
    if marks is not None:
        marks["pruned"] = time.perf_counter()
    # After the end's transaction: notices never change the run's result
    # (notify_run_end logs and swallows every failure).
    if task is not None and report is not None:
        notify_run_end(task, report)

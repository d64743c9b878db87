"""The slim run history: one small row per finished run, for the chart of last runs.

Reports (with their logs) are pruned to ``TASKMANAGER_REPORTS_KEPT`` per task;
the history keeps only start time, duration, result and the kind of end, so it can go back
further (``TASKMANAGER_HISTORY_KEPT`` runs per task, 100 by default).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from . import prepared, retention
from .conf import app_settings
from .models import RunHistory, Task


def record_run(
    task_id: int,
    started: datetime,
    finished: datetime,
    result: str,
    *,
    update_task: bool = True,
    end_kind: str = "",
    prune: bool = True,
) -> None:
    """Add the history row of a finished run and (with ``prune``) drop the task's oldest beyond the limit.

    The runner prunes at the same runs as it prunes old reports (only where
    no periodic pass does, at every ``retention.PRUNE_EVERY``-th run of a
    task: ``retention.prune_due``), the periodic pass with
    :func:`prune_over_limit`: in between a task has rows more than
    ``TASKMANAGER_HISTORY_KEPT``, which the chart (:func:`last_runs`) does
    not show.

    Also copy the duration (:func:`run_duration`) to ``Task.last_duration``
    (for the task list), unless ``update_task`` is False because the caller
    writes it in its own UPDATE of the task. ``started`` and ``finished`` are
    aware datetimes; ``result`` is a ``Task.Result`` value, ``end_kind`` an
    ``EndKind`` value (how the run ended, for the chart). Call it inside
    the run's closing transaction.
    """
    duration = run_duration(started, finished)
    # RunHistory.objects.create(), its INSERT compiled once per process: every run's end writes one.
    prepared.insert(
        RunHistory(task_id=task_id, started=started, duration=duration, result=result, end_kind=end_kind)
    )
    if update_task:
        Task.objects.filter(pk=task_id).update(last_duration=duration)
    if prune:
        prune_history(task_id)


def run_duration(started: datetime, finished: datetime) -> timedelta:
    """Return the duration recorded for a run (never negative, should the clock step back)."""
    return max(finished - started, timedelta(0))


def prune_history(task_id: int, keep: int | None = None) -> int:
    """Delete the task's history rows beyond the newest ``keep``; return how many."""
    keep = app_settings.HISTORY_KEPT if keep is None else keep
    old = list(
        RunHistory.objects.filter(task_id=task_id)
        .order_by("-started", "-pk")
        .values_list("pk", flat=True)[keep:]
    )
    if old:
        RunHistory.objects.filter(pk__in=old).delete()
    return len(old)


def prune_over_limit(keep: int | None = None) -> None:
    """The periodic pass's step: prune the history of the tasks with more than ``keep`` rows.

    One grouped query finds them (at most ``retention.BATCH`` tasks,
    :func:`taskmanager.retention.tasks_over`), then :func:`prune_history` each. Returns None (a step of the pass).
    """
    keep = app_settings.HISTORY_KEPT if keep is None else keep
    for task_id in retention.tasks_over(RunHistory.objects.all(), keep):
        prune_history(task_id, keep)


def last_runs(task_id: int, count: int | None = None) -> list[RunHistory]:
    """Return the task's last ``count`` runs, oldest first (one query)."""
    count = app_settings.HISTORY_KEPT if count is None else count
    rows = list(RunHistory.objects.filter(task_id=task_id).order_by("-started", "-pk")[:count])
    rows.reverse()
    return rows

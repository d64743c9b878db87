"""Retention: keep the last ``TASKMANAGER_REPORTS_KEPT`` finished reports per task.

A report whose log is small goes with its log lines in one transaction (the
end of a run does it inside its own closing transaction, see
:func:`prune_small_reports`); a big log is deleted first in chunks of CHUNK
rows, each chunk its own transaction, so that deleting a 1,000,000-line log
never holds the database (SQLite's single writer lock above all) for long.

When: not at a run's end. In a uWSGI spooler with the periodic pass on
(``TASKMANAGER_RECOVERY_SECONDS`` above 0) the pass prunes every task that
has more than the limit (:func:`prune_over_limit`, and the run history:
:func:`taskmanager.history.prune_over_limit`), so a run's end issues no
pruning query at all (issue 17: six statements per run, whichever run it
is). Where there is no periodic pass (``TASKMANAGER_RECOVERY_SECONDS = 0``,
or the runner outside a uWSGI spooler) a process prunes a task's old
reports and history at the end of every PRUNE_EVERY-th run of that task it
supervises (:func:`prune_due`). So between two passes a task may keep more
finished reports than the limit (a busy one, up to a pass's worth of runs);
never fewer, and a running report is never deleted.

Each pruning that deletes reports writes one audit entry (actor "system",
action "prune reports" on the task), in the transaction that deletes them:
one entry per prune, not per report.

django.tasks results (:func:`prune_results`) are kept by age, not by count:
a caller holds a result's id and may read it (``get_result``) long after
the function's carrier task has had ``REPORTS_KEPT`` more runs. The periodic
pass deletes the finished ones (SUCCESSFUL, FAILED) that ended more than
``TASKMANAGER_RESULTS_DAYS`` days ago on the database's clock, CHUNK rows
per statement (each its own transaction), at most BATCH statements a pass;
READY and RUNNING rows stay whatever their age. A result's report (its
log) is kept as long as the result is: the count above leaves out the
reports a result still names (:func:`prunable_reports`), so a function's
carrier task keeps the reports of its kept results plus ``REPORTS_KEPT``
others; once a result goes, its report is counted like any other.
"""

import datetime

from django.db import transaction
from django.db.models import Count, Exists, OuterRef

from . import audit, dbclock, uwsgi_runtime
from .conf import app_settings
from .db import write_db
from .models import DjangoTaskResult, LogLine, Report, Task

#: Log lines deleted per statement, so SQLite is never locked for long. A
#: report counting fewer lines than this is deleted with its log at once.
CHUNK = 5000
#: Without a periodic pass, a process prunes a task's reports at the end of
#: every this many runs of it.
PRUNE_EVERY = 10
#: Tasks the periodic pass prunes at most, and statements deleting old
#: django.tasks results (the next pass takes the rest).
BATCH = 100

# Runs of each task ended in this process since its last pruning here.
_runs_since_prune: dict[int, int] = {}


def prune_due(task_id: int) -> bool:
    """Count a run's end of ``task_id`` in this process; return whether its old reports are pruned now.

    Never where the periodic pass prunes (:func:`periodic_pass_prunes`);
    else True at every PRUNE_EVERY-th call for the task (no query: a count
    kept in the process).
    """
    if periodic_pass_prunes():
        return False
    count = _runs_since_prune.get(task_id, 0) + 1
    if count >= PRUNE_EVERY:
        _runs_since_prune.pop(task_id, None)
        return True
    _runs_since_prune[task_id] = count
    return False


def periodic_pass_prunes() -> bool:
    """Tell whether this process's runs leave pruning to the periodic pass.

    That is a uWSGI spooler process with ``TASKMANAGER_RECOVERY_SECONDS``
    above 0: its node's master registered the pass's timer
    (``spooler/uwsgi_handler.py``), which an idle spooler process of the
    node runs.
    """
    return bool(app_settings.RECOVERY_SECONDS) and uwsgi_runtime.in_spooler()


def prune_over_limit(keep: int | None = None) -> None:
    """The periodic pass's step: prune the tasks with more than ``keep`` finished reports.

    One grouped query finds them (at most BATCH tasks, the next pass takes
    the rest); each is pruned as :func:`prune_reports` does. Returns None:
    the audit entry of each pruning says what went.
    """
    keep = app_settings.REPORTS_KEPT if keep is None else keep
    for task_id in tasks_over(prunable_reports(), keep):
        prune_reports(task_id, keep)


def prunable_reports():
    """The finished reports the count may delete: not the report of a django.tasks result still kept.

    A caller reads a result (and an operator its page, with the link to its
    log) until the result goes by age (:func:`prune_results`): its log must
    not go first because its function ran ``REPORTS_KEPT`` more times.
    """
    return Report.objects.finished().filter(~Exists(DjangoTaskResult.objects.filter(report_id=OuterRef("pk"))))


def tasks_over(rows, keep: int) -> list[int]:
    """The ids of the tasks with more than ``keep`` of ``rows`` (a queryset of a model with a task), BATCH at most.

    One grouped query; the periodic pass prunes them (the next pass takes the rest).
    """
    over = rows.order_by().values("task_id").annotate(rows=Count("pk")).filter(rows__gt=keep)
    return list(over.values_list("task_id", flat=True)[:BATCH])


def old_reports(task_id: int, keep: int | None = None) -> list[tuple[int, int]]:
    """Return ``(pk, lines)`` of the task's prunable reports beyond the newest ``keep`` (one query).

    ``lines`` is the report's counted lines: its stored log rows are at most
    that many plus the app's own few notes (see ``Supervisor.add_line``).
    """
    keep = app_settings.REPORTS_KEPT if keep is None else keep
    return list(
        prunable_reports()
        .filter(task_id=task_id)
        .order_by("-invocation_datetime", "-pk")
        .values_list("pk", "lines")[keep:]
    )


def prune_reports(task_id: int, keep: int | None = None) -> int:
    """Delete the task's finished reports beyond the newest ``keep``; return how many.

    A running report is never deleted, nor another task's. A big log goes
    first, in chunks of CHUNK rows by ``seq`` range; the reports then go with
    the rest of their log lines, several per transaction as long as their
    logs add up to at most CHUNK lines.
    """
    old = old_reports(task_id, keep)
    batch, size = [], 0
    for report_id, lines in old:
        if lines >= CHUNK:
            delete_log(report_id)
            lines = 0
        if batch and size + lines > CHUNK:
            _delete_reports(batch, task_id)
            batch, size = [], 0
        batch.append(report_id)
        size += lines
    if batch:
        _delete_reports(batch, task_id)
    return len(old)


def prune_small_reports(task_id: int, keep: int | None = None) -> bool:
    """Delete the task's old reports with small logs, in the caller's transaction.

    "Old" as in :func:`prune_reports`; the reports deleted here hold at most
    CHUNK log lines together. Return whether old reports remain (big logs,
    or more than one transaction's worth), for :func:`prune_reports` to
    delete after the caller's transaction.
    """
    old = old_reports(task_id, keep)
    batch, size = [], 0
    for report_id, lines in old:
        if size + lines <= CHUNK:
            batch.append(report_id)
            size += lines
    if batch:
        _delete_reports(batch, task_id)
    return len(batch) < len(old)


def _delete_reports(pks: list[int], task_id: int) -> None:
    """Delete reports and their log lines (Django's collector: signals and cascades apply).

    One audit entry names how many went, and when the newest of them ran.
    """
    newest = (
        Report.objects.filter(pk__in=pks)
        .order_by("-invocation_datetime")
        .values_list("invocation_datetime", flat=True)
        .first()
    )
    # The collector loads the reports before deleting them: their pks suffice.
    Report.objects.filter(pk__in=pks).only("pk").delete()
    name = Task.objects.filter(pk=task_id).values_list("name", flat=True).first() or ""
    audit.record(
        audit.Action.PRUNE,
        actor=audit.SYSTEM,
        object_type=audit.ObjectType.TASK,
        object_id=task_id,
        object_repr=name,
        changes={"reports": [len(pks), 0]},
        message="%d finished report(s) deleted beyond the newest %s kept (TASKMANAGER_REPORTS_KEPT); "
        "the newest of them started at %s." % (len(pks), app_settings.REPORTS_KEPT, audit.value(newest)),
    )


def delete_log(report_id: int) -> None:
    """Delete a report's log lines in chunks of CHUNK rows."""
    while True:
        with transaction.atomic(using=write_db()):
            bound = list(
                LogLine.objects.filter(report_id=report_id)
                .order_by("seq")
                .values_list("seq", flat=True)[CHUNK - 1 : CHUNK]
            )
            if not bound:
                LogLine.objects.filter(report_id=report_id).delete()
                return
            LogLine.objects.filter(report_id=report_id, seq__lte=bound[0]).delete()


def prune_results(now: datetime.datetime | None = None) -> int:
    """The periodic pass's step: delete the django.tasks results finished over ``RESULTS_DAYS`` days ago.

    0 (or less) keeps them for ever. Returns how many went.
    """
    days = float(app_settings.RESULTS_DAYS or 0)
    if days <= 0:
        return 0
    cutoff = (now or dbclock.now()) - datetime.timedelta(days=days)
    old = DjangoTaskResult.objects.filter(
        status__in=[DjangoTaskResult.Status.SUCCESSFUL, DjangoTaskResult.Status.FAILED], finished_at__lt=cutoff
    )
    deleted = 0
    for _batch in range(BATCH):
        pks = list(old.order_by().values_list("pk", flat=True)[:CHUNK])
        if not pks:
            break
        # By pk and status again: a row is never deleted but finished.
        count, _per_model = old.filter(pk__in=pks).delete()
        deleted += count
    return deleted

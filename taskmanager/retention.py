"""Retention: keep the last ``TASKMANAGER_REPORTS_KEPT`` finished reports per task."""

from django.db import transaction

from .conf import app_settings
from .models import LogLine, Report

#: Log lines deleted per statement, so SQLite is never locked for long.
CHUNK = 5000


def prune_reports(task_id: int, keep: int | None = None) -> int:
    """Delete the task's finished reports beyond the newest ``keep``; return how many.

    A running report is never deleted, nor another task's. Log lines go
    first, in chunks of CHUNK rows by ``seq`` range, then the report rows.
    """
    keep = app_settings.REPORTS_KEPT if keep is None else keep
    old = list(
        Report.objects.finished()
        .filter(task_id=task_id)
        .order_by("-invocation_datetime", "-pk")
        .values_list("pk", flat=True)[keep:]
    )
    for report_id in old:
        delete_log(report_id)
    if old:
        Report.objects.filter(pk__in=old).delete()
    return len(old)


def delete_log(report_id: int) -> None:
    """Delete a report's log lines in chunks of CHUNK rows."""
    while True:
        with transaction.atomic():
            bound = list(
                LogLine.objects.filter(report_id=report_id)
                .order_by("seq")
                .values_list("seq", flat=True)[CHUNK - 1 : CHUNK]
            )
            if not bound:
                LogLine.objects.filter(report_id=report_id).delete()
                return
            LogLine.objects.filter(report_id=report_id, seq__lte=bound[0]).delete()

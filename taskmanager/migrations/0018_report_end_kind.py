# Issue 16: how a run ended, as structured data (EndKind), beside the free-text end reason.

from django.db import migrations, models
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

END_KINDS = [
    ("completed", "completed"),
    ("stopped", "stopped by a user"),
    ("timed out", "timed out"),
    ("interrupted", "interrupted"),
    ("crashed", "crashed"),
    ("exit code", "exit code"),
    ("fenced", "heartbeat lost"),
    ("not run", "not run"),
]

# The end reasons the code wrote before this migration, by their start, and their kind.
REASON_KINDS = [
    ("completed", "completed"),
    ("stopped by user ", "stopped"),
    ("timed out after ", "timed out"),
    ("interrupted", "interrupted"),
    ("fenced: ", "fenced"),
    ("exception: ", "crashed"),
    ("signal ", "crashed"),
    ("supervisor error", "crashed"),
    ("invalid arguments", "not run"),
    ("command inactive", "not run"),
    ("not allowed", "not run"),
]


def set_end_kinds(apps, schema_editor):
    """Give the finished runs recorded before this migration their end kind, where their reason tells it."""
    Report = apps.get_model("taskmanager", "Report")
    RunHistory = apps.get_model("taskmanager", "RunHistory")
    Task = apps.get_model("taskmanager", "Task")
    finished = Report.objects.filter(finished_datetime__isnull=False, end_kind="")
    for start, kind in REASON_KINDS:
        finished.filter(end_reason__startswith=start).update(end_kind=kind)
    for pk, reason in finished.filter(end_reason__startswith="exit code ").values_list("pk", "end_reason"):
        code = reason[len("exit code ") :].strip()
        if code.lstrip("-").isdigit() and -32768 <= int(code) <= 32767:
            Report.objects.filter(pk=pk).update(end_kind="exit code", exit_code=int(code))
    # Runs that did not fail completed; a failed one's kind comes from its report, if still kept.
    RunHistory.objects.exclude(result="FAILED").update(end_kind="completed")
    report_kind = Report.objects.filter(
        task_id=OuterRef("task_id"), invocation_datetime=OuterRef("started")
    ).exclude(end_kind="")
    RunHistory.objects.filter(result="FAILED").update(
        end_kind=Coalesce(Subquery(report_kind.values("end_kind")[:1]), Value(""))
    )
    Task.objects.exclude(last_result="").exclude(last_result="FAILED").update(last_end_kind="completed")
    last_kind = Report.objects.filter(
        task_id=OuterRef("pk"), invocation_datetime=OuterRef("last_datetime")
    ).exclude(end_kind="")
    Task.objects.filter(last_result="FAILED").update(
        last_end_kind=Coalesce(Subquery(last_kind.values("end_kind")[:1]), Value(""))
    )


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0017_report_run_arguments"),
    ]

    operations = [
        migrations.AddField(
            model_name="report",
            name="end_kind",
            field=models.CharField(blank=True, choices=END_KINDS, max_length=12, verbose_name="end"),
        ),
        migrations.AddField(
            model_name="report",
            name="exit_code",
            field=models.SmallIntegerField(blank=True, null=True, verbose_name="exit code"),
        ),
        migrations.AddField(
            model_name="runhistory",
            name="end_kind",
            field=models.CharField(blank=True, choices=END_KINDS, max_length=12, verbose_name="end"),
        ),
        migrations.AddField(
            model_name="task",
            name="last_end_kind",
            field=models.CharField(
                blank=True, choices=END_KINDS, editable=False, max_length=12, verbose_name="last end"
            ),
        ),
        migrations.RunPython(set_end_kinds, migrations.RunPython.noop, elidable=True),
    ]

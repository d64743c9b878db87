# Issue 17: the index on the task's status alone is redundant: taskmanager_task_due
# on (status, next_datetime) serves a filter on the status by its leading column,
# and every write of a task's status (claim, end, Stop) paid for both.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0018_report_end_kind"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="task",
            name="taskmanager_task_status",
        ),
    ]

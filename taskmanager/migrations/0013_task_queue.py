# Numbered 0013 (issue 15); the lead re-chains the dependency at merge.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0011_audit"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="queue",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Only spooler nodes serving this queue run the task (their TASKMANAGER_SERVE_QUEUES); "
                "empty means the default queue.",
                max_length=100,
                verbose_name="queue",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["status", "next_datetime"], name="taskmanager_task_due"),
        ),
    ]

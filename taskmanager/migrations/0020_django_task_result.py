# Issue 18: the table of the django.tasks backend (taskmanager.djangotasks), one row per
# enqueued function call; and the reports' trigger of such a run. Plain Django fields
# only: the migration runs on Django 5.2, where django.tasks does not exist.

import django.db.models.deletion
from django.db import migrations, models

import taskmanager.models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0019_drop_task_status_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="report",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("start", "start"),
                    ("schedule", "schedule"),
                    ("run now", "run now"),
                    ("recovery", "recovery"),
                    ("enqueue", "enqueued"),
                ],
                max_length=10,
                verbose_name="trigger",
            ),
        ),
        migrations.CreateModel(
            name="DjangoTaskResult",
            fields=[
                (
                    "id",
                    models.CharField(
                        default=taskmanager.models.new_token,
                        editable=False,
                        max_length=32,
                        primary_key=True,
                        serialize=False,
                        verbose_name="id",
                    ),
                ),
                ("backend", models.CharField(max_length=100, verbose_name="backend")),
                ("task_path", models.CharField(max_length=300, verbose_name="task")),
                ("queue_name", models.CharField(max_length=100, verbose_name="queue")),
                ("priority", models.SmallIntegerField(default=0, verbose_name="priority")),
                ("takes_context", models.BooleanField(default=False)),
                ("run_after", models.DateTimeField(blank=True, null=True, verbose_name="run after")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("READY", "Ready"),
                            ("RUNNING", "Running"),
                            ("FAILED", "Failed"),
                            ("SUCCESSFUL", "Successful"),
                        ],
                        default="READY",
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                ("args", models.JSONField(blank=True, default=list, verbose_name="positional arguments")),
                ("kwargs", models.JSONField(blank=True, default=dict, verbose_name="keyword arguments")),
                ("return_value", models.JSONField(blank=True, null=True, verbose_name="return value")),
                ("errors", models.JSONField(blank=True, default=list, verbose_name="errors")),
                ("worker_ids", models.JSONField(blank=True, default=list, verbose_name="workers")),
                ("enqueued_at", models.DateTimeField(verbose_name="enqueued at")),
                ("started_at", models.DateTimeField(blank=True, null=True, verbose_name="started at")),
                ("finished_at", models.DateTimeField(blank=True, null=True, verbose_name="finished at")),
                (
                    "last_attempted_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="last attempted at"),
                ),
                (
                    "report",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="taskmanager.report",
                        verbose_name="report",
                    ),
                ),
            ],
            options={
                "verbose_name": "task result",
                "verbose_name_plural": "task results",
                "ordering": ["-enqueued_at", "-pk"],
                "indexes": [
                    models.Index(
                        fields=["status", "queue_name", "-priority", "enqueued_at"],
                        name="taskmanager_result_claim",
                    )
                ],
            },
        ),
    ]

# Issue 19: a Command row is a management command or a @task function (kind); a function's
# name is its dotted path, longer than a command's; a function task's arguments are JSON (help text).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0020_django_task_result"),
    ]

    operations = [
        migrations.AddField(
            model_name="command",
            name="kind",
            field=models.CharField(
                choices=[("command", "management command"), ("function", "task function")],
                default="command",
                editable=False,
                max_length=10,
                verbose_name="kind",
            ),
        ),
        migrations.AlterField(
            model_name="command",
            name="name",
            field=models.CharField(max_length=300, verbose_name="name"),
        ),
        migrations.AlterField(
            model_name="task",
            name="arguments",
            field=models.TextField(
                blank=True,
                help_text='Separate arguments with commas and the values of one argument with spaces, e.g. <code>-f, --names alice bob, --mode=fast</code>. Quote values that contain spaces or commas. For a function: JSON, <code>{"args": [1, "x"], "kwargs": {"name": "alice"}}</code> (both optional).',
                verbose_name="arguments",
            ),
        ),
    ]

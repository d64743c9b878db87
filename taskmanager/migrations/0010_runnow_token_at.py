from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0008_task_overdue"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="run_now_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]

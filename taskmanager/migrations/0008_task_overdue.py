from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0007_run_attribution"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="overdue_notified_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]

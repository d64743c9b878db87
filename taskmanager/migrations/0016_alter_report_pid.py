from django.db import migrations, models


class Migration(migrations.Migration):
    # The label only: "PID", as the process id is written (issue 16, item 11).
    dependencies = [
        ("taskmanager", "0015_task_payload_version"),
    ]

    operations = [
        migrations.AlterField(
            model_name="report",
            name="pid",
            field=models.IntegerField(blank=True, null=True, verbose_name="PID"),
        ),
    ]

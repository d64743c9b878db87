from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0008_task_overdue"),
    ]

    operations = [
        migrations.AddField(
            model_name="spoolerheartbeat",
            name="clock_offset",
            field=models.FloatField(blank=True, null=True),
        ),
    ]

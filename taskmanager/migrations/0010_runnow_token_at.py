from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0009_node_clock_offset"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="run_now_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]

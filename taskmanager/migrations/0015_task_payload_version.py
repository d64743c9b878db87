from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0014_node_identity"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="payload_version",
            field=models.PositiveSmallIntegerField(default=1, editable=False),
        ),
    ]

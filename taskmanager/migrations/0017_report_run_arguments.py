from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskmanager", "0016_alter_report_pid"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="run_now_arguments",
            field=models.TextField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="report",
            name="arguments_override",
            field=models.TextField(blank=True, null=True, verbose_name="one-off arguments"),
        ),
    ]

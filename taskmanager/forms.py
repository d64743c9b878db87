"""The task form: arguments and schedule are checked when the task is saved."""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _

from . import arguments, schedule
from .models import Command, Task


class TaskForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = [
            "name",
            "command",
            "arguments",
            "category",
            "note",
            "timeout",
            "scheduling",
            "repetition_period",
            "repetition_rate",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("command")
        if field is not None:
            # Only active commands can be chosen; a task keeps an inactive one it already has.
            current = self.instance.command_id if self.instance.pk else None
            queryset = Command.objects.filter(active=True)
            if current:
                queryset = Command.objects.filter(active=True) | Command.objects.filter(pk=current)
            field.queryset = queryset.order_by("app_name", "name")

    def clean(self):
        cleaned = super().clean()
        command = cleaned.get("command")
        text = cleaned.get("arguments", "")
        try:
            argv = arguments.parse_arguments(text)
        except arguments.ArgumentsError as exc:
            self.add_error("arguments", str(exc))
            argv = None
        if command is not None and argv is not None:
            try:
                arguments.validate_arguments(command.app_name, command.name, argv)
            except arguments.ArgumentsError as exc:
                self.add_error("arguments", str(exc))
        period = cleaned.get("repetition_period") or None
        rate = cleaned.get("repetition_rate")
        try:
            schedule.validate(period, rate)
        except schedule.ScheduleError as exc:
            self.add_error("repetition_rate" if period else "repetition_period", str(exc))
        else:
            if "scheduling" not in self.errors:
                self._check_schedule_computes(cleaned.get("scheduling"), period, rate)
        return cleaned

    def _check_schedule_computes(self, anchor, period, rate):
        """Refuse a schedule whose runs cannot be computed (e.g. past the year 9999).

        A periodic task needs at least its first two runs: otherwise the
        spooler would find no next slot after the first run.
        """
        try:
            runs = schedule.upcoming(anchor, period, rate, timezone.now(), schedule.project_tz(), count=2)
        except schedule.ScheduleError as exc:
            self.add_error("scheduling", str(exc))
            return
        if period and len(runs) < 2:
            self.add_error(
                "scheduling",
                _(
                    "This schedule has no run after the first one before the year 9999: choose an earlier first run."
                ),
            )

"""The task form: arguments and schedule are checked when the task is saved."""

from django import forms

from . import arguments, schedule
from .models import Command, Task


class TaskForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = "__all__"

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
        return cleaned


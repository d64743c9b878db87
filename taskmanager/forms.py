"""The task form: arguments and schedule are checked when the task is saved."""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _

from . import arguments, schedule
from .models import Command, Task


#: Fields whose change alters what a waiting run executes (see TaskForm.can_run).
RUN_FIELDS = ("command", "arguments", "scheduling", "repetition_period", "repetition_rate")


class TaskForm(forms.ModelForm):
    #: Whether the person editing may run tasks (``taskmanager.run_task``);
    #: TaskAdmin.get_form sets it. Without it, the fields of RUN_FIELDS of a
    #: task with a run waiting (a schedule, a periodic chain, a queued "run
    #: now") cannot change: the run would execute what they chose, which is
    #: running a command.
    can_run = True

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
        self._check_run_permission()
        return cleaned

    def _check_run_permission(self):
        if self.can_run or self.instance.pk is None:
            return
        if not any(name in self.changed_data for name in RUN_FIELDS):
            return
        waiting = Task.objects.filter(pk=self.instance.pk).exclude(run_token="", run_now_token="")
        if waiting.exists():
            self.add_error(
                None,
                _(
                    "This task has a run waiting: changing its command, arguments or schedule would "
                    "change what runs, which needs the permission to run tasks. Ask someone who has it, "
                    "or to stop the task first."
                ),
            )

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

"""The task form: arguments and schedule are checked when the task is saved."""

from django import forms
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from . import arguments, callargs, datetimes, dbclock, policy, schedule, taskfunctions
from .conf import DEFAULT_QUEUE, app_settings, use_tz_problem
from .models import Command, DjangoTaskResult, Task

#: Fields that decide what a run executes: only someone who may run both the
#: task's command and the new one may change them (docs/security.rst).
RUN_FIELDS = (
    "command",
    "arguments",
    "scheduling",
    "repetition_period",
    "repetition_rate",
    "timeout",
    "notify",
)
#: The schedule's fields (part of RUN_FIELDS: when a task runs is part of what it runs).
SCHEDULE_FIELDS = ("scheduling", "repetition_period", "repetition_rate")


def arguments_error(command, text: str, kind: str | None = None) -> str | None:
    """Why ``text`` may not be the arguments of a run of ``command``, or None.

    The one check of a task's save and of Run now with other arguments: the
    size and the syntax (``kind``'s, by default the command's: a function's
    are JSON, :mod:`.callargs`), then the locked arguments (approved strings
    only) and the command's own parser, or the function's signature (the
    function is imported, never called). ``command`` None (its rights were
    refused already: nothing of it is loaded) checks the size and syntax only.
    """
    kind = kind or getattr(command, "kind", callargs.COMMAND)
    try:
        arguments.check_size(text, [])  # before splitting: a huge text is slow to split too
        argv = callargs.run_argv(kind, text)
        arguments.check_size(None, argv)
    except arguments.ArgumentsError as exc:
        return str(exc)
    if command is None:
        return None
    reason = policy.arguments_refusal(command, argv)
    if reason:
        return reason
    try:
        if kind == callargs.FUNCTION:
            taskfunctions.validate(command.name, argv)
        else:
            arguments.validate_arguments(command.app_name, command.name, argv)
    except arguments.ArgumentsError as exc:
        return str(exc)
    return None


def group_choices(field) -> None:
    """Offer the commands and the ``@task`` functions of ``field`` (its queryset) in two groups of the select.

    Lazily (read when the select is rendered, not when a post is checked);
    one group only when no function is offered.
    """

    def choices():
        rows = list(field.queryset)
        commands = [(row.pk, field.label_from_instance(row)) for row in rows if not row.is_function]
        functions = [(row.pk, field.label_from_instance(row)) for row in rows if row.is_function]
        empty = [("", field.empty_label)] if field.empty_label is not None else []
        if not functions:
            return empty + commands
        return [*empty, (_("Management commands"), commands), (_("Task functions"), functions)]

    field.widget.choices = choices  # (the admin's related-field wrapper passes them to its select)


class TaskForm(forms.ModelForm):
    #: The person editing; TaskAdmin.get_form sets it on the form class it
    #: makes for each request. None (a form built outside the admin) may
    #: choose nothing: every command is refused.
    user = None

    #: The definition version the page was rendered with (Task.version): a
    #: save from a page older than the task's version is refused (clean).
    loaded_version = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    class Meta:
        model = Task
        fields = [
            "name",
            "command",
            "arguments",
            "category",
            "note",
            "timeout",
            "notify",
            "queue",
            "scheduling",
            "repetition_period",
            "repetition_rate",
        ]
        # One line of arguments: a two-row box as wide as the admin's long
        # fields (Django's default is ten rows), still a textarea so a long
        # string wraps into view (issue 16, item 11).
        widgets = {"arguments": forms.Textarea(attrs={"rows": 2, "class": "vLargeTextField tm-arguments"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["loaded_version"].initial = self.instance.version
        current = self.instance.command if self.instance.pk else None
        #: Whether this user may change what the task runs (see RUN_FIELDS).
        self.may_define = current is None or policy.user_refusal(self.user, current) is None
        if not self.may_define:
            # Disabled fields keep their value whatever is posted (Django
            # ignores the data of a disabled field).
            for name in RUN_FIELDS:
                if name in self.fields:
                    self.fields[name].disabled = True
            self.definition_locked_reason = _(
                "You may not run this task's command, so you may change its name, category and note only."
            )
        field = self.fields.get("command")
        if field is not None and not field.disabled:
            # The commands this user may run; a task keeps the one it has.
            queryset = policy.runnable_commands(self.user)
            if current is not None:
                queryset = queryset | Command.objects.filter(pk=current.pk)
            field.queryset = queryset.order_by("app_name", "name")
            group_choices(field)

    def clean_name(self) -> str:
        """Not a carrier task's name (``django.tasks: <path>``): the spoolers make those, one per function."""
        name = self.cleaned_data.get("name") or ""
        prefix = DjangoTaskResult.CARRIER_PREFIX
        if name.startswith(prefix) and name != (self.instance.name if self.instance.pk else None):
            # Task names are unique: a task of another command holding the name
            # of a function's carrier would leave that function's calls unrun.
            raise forms.ValidationError(
                _("Names starting with “%(prefix)s” are kept for the tasks carrying django.tasks functions.")
                % {"prefix": prefix}
            )
        return name

    def clean_queue(self) -> str:
        """A queue of ``TASKMANAGER_QUEUES`` (when set); the default queue is stored blank."""
        queue = (self.cleaned_data.get("queue") or "").strip()
        if queue == DEFAULT_QUEUE:
            return ""
        known = app_settings.QUEUES
        if queue and known is not None and queue not in known:
            raise forms.ValidationError(
                _("Unknown queue %(queue)s; the queues are: %(known)s.")
                % {
                    "queue": queue,
                    "known": ", ".join([DEFAULT_QUEUE, *[q for q in known if q != DEFAULT_QUEUE]]),
                }
            )
        return queue

    def clean(self):
        cleaned = super().clean()
        if not self._check_version(cleaned.get("loaded_version")):
            return cleaned
        if not self.may_define:
            return cleaned
        command = cleaned.get("command")
        # Rights first: nothing of a command the user may not run is loaded.
        rights_ok = command is not None
        if command is not None and (self.instance.pk is None or "command" in self.changed_data):
            reason = policy.command_refusal(command) or policy.user_refusal(self.user, command)
            if reason:
                self.add_error("command", reason)
                rights_ok = False
        elif command is not None and any(name in self.changed_data for name in RUN_FIELDS):
            # The task keeps a command that is blocked or switched off: what
            # it runs cannot change (its parser is not even loaded) until it
            # gets a runnable command.
            reason = policy.command_refusal(command)
            if reason:
                self.add_error("command", reason)
                rights_ok = False
        kind = command.kind if command is not None else None
        error = arguments_error(command if rights_ok else None, cleaned.get("arguments", ""), kind)
        if error:
            self.add_error("arguments", error)
        problem = use_tz_problem()
        if problem:
            self.add_error(None, problem)
            return cleaned
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

    def _check_version(self, loaded) -> bool:
        """Refuse a save from a page rendered before the task's definition last changed.

        The task's row is locked (``select_for_update``) until the admin's
        transaction ends, so a concurrent save of the same task waits and then
        sees the version this one writes (on SQLite the IMMEDIATE transaction
        serializes the saves). On refusal nothing is saved; the form keeps
        the user's input, now carrying the current version, so that saving
        again is a deliberate overwrite. Return whether the save may go on.
        """
        if self.instance.pk is None or loaded is None:
            return True
        rows = Task.objects.all()
        if transaction.get_connection().in_atomic_block:  # the admin's save: lock until it commits
            rows = rows.select_for_update()
        row = (
            rows.filter(pk=self.instance.pk)
            .values("version", "definition_changed_by_id", "definition_changed_at")
            .first()
        )
        if row is None or row["version"] == loaded:
            return True
        current = Task.objects.select_related("definition_changed_by", "command").get(pk=self.instance.pk)
        who = current.definition_changed_by.get_username() if current.definition_changed_by else _("someone")
        when = datetimes.format_datetime(current.definition_changed_at, empty="")
        self.add_error(
            None,
            _(
                "Not saved: %(who)s changed what this task runs (%(when)s) after this page was loaded. "
                "Now: %(now)s. Your input is kept below: check it against theirs, then save again to "
                "replace their change, or reload the page to start from it."
            )
            % {"who": who, "when": when, "now": self._current_values(current)},
        )
        data = self.data.copy()
        data[self.add_prefix("loaded_version")] = str(row["version"])
        self.data = data
        return False

    def _current_values(self, task) -> str:
        """The definition fields of ``task`` whose value differs from this form's input, as text."""
        shown = []
        for name in RUN_FIELDS:
            if name not in self.fields:
                continue
            now = getattr(task, name)
            mine = self.cleaned_data.get(name) if hasattr(self, "cleaned_data") else None
            if now != mine and not (now in (None, "") and mine in (None, "")):
                label = self.fields[name].label or name
                if hasattr(now, "tzinfo") and now is not None:
                    now = datetimes.format_datetime(now)
                shown.append("%s = %s" % (label, "-" if now in (None, "") else now))
        return "; ".join(shown) or _("the same values as your input")

    def _check_schedule_computes(self, anchor, period, rate):
        """Refuse a schedule whose runs cannot be computed (e.g. past the year 9999).

        A periodic task needs at least its first two runs: otherwise the
        spooler would find no next slot after the first run.
        """
        try:
            runs = schedule.upcoming(anchor, period, rate, dbclock.now(), schedule.project_tz(), count=2)
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


class OtherArgumentsForm(forms.Form):
    """Run now with other arguments: the one-off arguments, checked as a save checks a task's.

    ``task`` is the task to run; ``version`` the definition version the
    page showed (a run from an older page is refused, as Run now's).
    """

    arguments = forms.CharField(
        label=_lazy("arguments"),
        required=False,
        widget=forms.TextInput(attrs={"class": "vLargeTextField tm-arguments", "autofocus": True}),
        help_text=_lazy(
            "For this run only: the task keeps its own arguments. The same syntax as the task's arguments."
        ),
    )
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, task, **kwargs):
        self.task = task
        super().__init__(*args, **kwargs)

    def clean_arguments(self) -> str:
        text = self.cleaned_data.get("arguments", "")
        # A blocked or inactive command: its parser is not even loaded.
        error = policy.command_refusal(self.task.command) or arguments_error(self.task.command, text)
        if error:
            raise forms.ValidationError(error)
        return text

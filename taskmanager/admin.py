"""The "Task manager" section of the Django admin.

Extra views (Start, Stop, Run now, the report log) are added through
``ModelAdmin.get_urls`` and wrapped in ``admin_site.admin_view``, so they need
the admin login; each checks its own permission. State changes accept POST
only (with Django's CSRF protection).
"""

from types import SimpleNamespace

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field, display_for_value, lookup_field
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connections
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from . import (
    actions,
    admin_results,  # noqa: F401 - registers the django.tasks results' admin
    arguments,
    audit,
    audit_display,
    bulkstart,
    callargs,
    dbclock,
    display,
    history,
    logviews,
    policy,
    startsql,
    taskfunctions,
)
from .admin_readonly import WrittenByTheAppMixin
from .admin_runwith import OtherArgumentsMixin
from .admin_schedule import SchedulingAdminMixin
from .busy import BusyDatabaseMixin
from .conf import app_settings
from .forms import RUN_FIELDS, TaskForm
from .models import (
    ApprovedArguments,
    AuditEntry,
    Command,
    DjangoTaskResult,
    Report,
    Task,
    TaskCategory,
    carrier_tasks,
)

RUN_PERMISSION = policy.RUN_PERMISSION


def _can_run(request) -> bool:
    """Whether the user may run tasks at all (the buttons and actions are shown)."""
    return request.user.has_perm(RUN_PERMISSION)


def _may_stop(request, task) -> bool:
    """Whether the user may stop ``task``'s run: the same rights on its command as for Start."""
    return policy.user_refusal(request.user, task.command) is None


def _is_waiting_or_running(task) -> bool:
    return task.status != Task.Status.IDLE or bool(task.run_now_token)


class _TaskChangeList(ChangeList):
    """The task list without the carrier tasks of django.tasks functions (see TaskAdmin.changelist_view)."""

    def get_queryset(self, request, exclude_parameters=None):
        # From the root queryset: the list's total ("0 results (1 total)") must not count them either.
        self.root_queryset = self.root_queryset.offered()
        return super().get_queryset(request, exclude_parameters)


def _is_pk(text: str) -> bool:
    """Whether ``text`` is a usable primary key: ASCII digits, within a 64-bit integer.

    (``"²".isdigit()`` is true but ``int()`` refuses it; a longer number
    overflows the database driver.)
    """
    return text.isascii() and text.isdigit() and len(text) <= 18


class TaskManagerMedia:
    css = {"all": ["taskmanager/taskmanager.css"]}
    js = ["taskmanager/taskmanager.js"]


class ApprovedArgumentsForm(forms.ModelForm):
    class Meta:
        model = ApprovedArguments
        fields = ["arguments"]

    def has_changed(self):
        # A row added with "Add another" and left empty approves running with
        # no arguments; Django would skip it as unchanged.
        return self.instance.pk is None or super().has_changed()

    def clean_arguments(self):
        text = self.cleaned_data.get("arguments", "")
        command = Command.objects.filter(pk=self.instance.command_id).first()
        try:
            callargs.argv_of(command, text)  # a function's are JSON
        except arguments.ArgumentsError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text


class ApprovedArgumentsInline(admin.TabularInline):
    """The argument strings a superuser approved for a command with locked arguments.

    An empty row approves running with no arguments.
    """

    model = ApprovedArguments
    form = ApprovedArgumentsForm
    fields = ["arguments", "approved_by", "approved_at_display"]
    readonly_fields = ["approved_by", "approved_at_display"]
    extra = 0
    approved_at_display = display.datetime_column(ApprovedArguments, "approved_at")
    verbose_name_plural = _("approved arguments (used when the arguments are locked)")

    # Only superusers approve arguments: approving is choosing what runs.
    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("taskmanager.view_command")


class AuditHistoryMixin:
    """The object's history page lists its audit entries (with before and after) above Django's log."""

    object_history_template = "admin/taskmanager/object_history.html"
    #: Audit entries shown on a history page; the audit list has the rest.
    AUDIT_SHOWN = 200

    def history_view(self, request, object_id, extra_context=None):
        object_type = audit.OBJECT_TYPES[self.model.__name__]
        entries = list(audit.for_object(object_type, object_id)[: self.AUDIT_SHOWN + 1])
        more = ""
        if len(entries) > self.AUDIT_SHOWN:
            entries = entries[: self.AUDIT_SHOWN]
            if request.user.has_perm("taskmanager.view_auditentry"):
                query = {"object_type": object_type, "object_id": object_id}
                more = reverse("admin:taskmanager_auditentry_changelist") + "?" + urlencode(query)
        shown = self.audit_changes_shown(request, object_id)
        for entry in entries:
            entry.changes_html = audit_display.changes_html(entry, shown(entry))
            entry.message_shown = audit_display.message_text(entry)
        context = {"audit_entries": entries, "audit_more": more, **(extra_context or {})}
        return super().history_view(request, object_id, extra_context=context)

    def audit_changes_shown(self, request, object_id):
        """Return ``entry -> the values of it this user's history page shows`` (all of them, unless a subclass says)."""
        return lambda entry: entry.changes


def _command_rights(command) -> dict:
    """What a command's page sets, as audit values: the active flag, the run rights, the approved strings."""
    return {
        "active": command.active,
        "run_by": command.run_by,
        "groups": sorted(command.groups.values_list("name", flat=True)) if command.pk else [],
        "locked_arguments": command.locked_arguments,
        "approved_arguments": (
            list(command.approved_arguments.order_by("pk").values_list("arguments", flat=True))
            if command.pk
            else []
        ),
    }


class CommandForm(forms.ModelForm):
    """Activation and run rights are superuser acts; others may only switch a command off."""

    #: The person editing (set by CommandAdmin.get_form).
    user = None

    class Meta:
        model = Command
        fields = ["active", "run_by", "groups", "locked_arguments"]

    def clean_active(self):
        active = self.cleaned_data.get("active")
        if active and not self.instance.active:
            if not (self.user is not None and self.user.is_superuser):
                raise forms.ValidationError(_("Only superusers may activate a command."))
            reason = policy.blocked(self.instance.app_name, self.instance.name)
            if reason:
                raise forms.ValidationError(reason)
        return active


class TaskCountMixin:
    """A sortable "tasks" column: how many tasks the row has (commands, categories)."""

    def get_queryset(self, request):
        # Not the carrier tasks of django.tasks functions (the Task list leaves them out too).
        counted = Count("tasks", filter=~carrier_tasks("tasks__"))
        return super().get_queryset(request).annotate(_task_count=counted)

    @admin.display(description=_("tasks"), ordering="_task_count")
    def task_count(self, obj):
        return obj._task_count


@admin.register(Command)
class CommandAdmin(AuditHistoryMixin, BusyDatabaseMixin, TaskCountMixin, admin.ModelAdmin):
    Media = TaskManagerMedia
    form = CommandForm
    list_display = ["name", "app_name", "kind", "active", "runnable", "run_by", "task_count"]
    list_display_links = ["name", "app_name"]
    list_filter = ["kind", "active", "run_by", "locked_arguments", "app_name"]
    search_fields = ["name", "app_name"]
    list_editable = []
    inlines = [ApprovedArgumentsInline]
    # Commands come from collect_commands (name and app are what it found):
    # people may only switch them on and off and, superusers, set who runs them.
    fields = [
        "name",
        "app_name",
        "kind",
        "active",
        "runnable",
        "run_by",
        "groups",
        "locked_arguments",
        "syntax",
    ]
    filter_horizontal = ["groups"]
    #: Fields only superusers may change.
    SUPERUSER_FIELDS = ["run_by", "groups", "locked_arguments"]

    def get_readonly_fields(self, request, obj=None):
        readonly = ["name", "app_name", "kind", "runnable", "syntax"]
        if not request.user.is_superuser:
            readonly += self.SUPERUSER_FIELDS
            if obj is not None and not obj.active:
                readonly.append("active")  # they may only deactivate
        if obj is not None and obj.is_carrier:
            # Never a task of its own (policy.blocked): its flag and argument lock change
            # nothing; who may run it is who may see and stop django.tasks results.
            readonly += [f for f in ("active", "locked_arguments") if f not in readonly]
        return readonly

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        # The rights as they were, read in the save's transaction (audited in save_related).
        form.audit_before = _command_rights(Command.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)

    def _audit(self, request, form):
        """One entry for an activation or deactivation, one for a change of the run rights."""
        command = form.instance
        changes = audit.diff(getattr(form, "audit_before", {}), _command_rights(command))
        active = changes.pop("active", None)
        if active is not None:
            action = audit.Action.ACTIVATE if active[1] else audit.Action.DEACTIVATE
            audit.record(action, command, user=request.user, changes={"active": active})
        if changes:
            audit.record(audit.Action.RIGHTS, command, user=request.user, changes=changes)

    def delete_model(self, request, obj):
        audit.record(audit.Action.DELETE, obj, user=request.user, changes=_deleted(_command_rights(obj)))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for command in queryset:
            audit.record(
                audit.Action.DELETE, command, user=request.user, changes=_deleted(_command_rights(command))
            )
        super().delete_queryset(request, queryset)

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            if formset.model is ApprovedArguments:
                for approved in formset.save(commit=False):
                    if approved.pk is None or approved.approved_by_id is None:
                        approved.approved_by = request.user
                        approved.approved_at = dbclock.now()
        super().save_related(request, form, formsets, change)
        self._audit(request, form)
        command = form.instance
        if command.locked_arguments:
            # Say at once which tasks the lock stops, rather than by their failed runs.
            approved = [argv for _text, argv in policy.approved_argvs(command)]
            stopped = []
            for name, text in command.tasks.values_list("name", "arguments"):
                try:
                    argv = callargs.argv_of(command, text)
                except arguments.ArgumentsError:
                    argv = None
                if argv not in approved:
                    stopped.append(name)
            if stopped:
                self.message_user(
                    request,
                    _(
                        "%(count)d task(s) of this command use arguments that are not approved, so they "
                        "cannot run: %(tasks)s."
                    )
                    % {"count": len(stopped), "tasks": ", ".join(stopped[:20])},
                    messages.WARNING,
                )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # A deleted command comes back from the next collection with the
        # default rights (active, anyone may run it, unlocked): deleting one
        # undoes a superuser's choices, so it is a superuser's act too.
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    @admin.display(description=_("runnable"))
    def runnable(self, obj):
        if obj is None or not obj.pk:
            return display.EMPTY
        reason = policy.blocked(obj.app_name, obj.name)
        if obj.is_carrier:
            return format_html(
                '<span class="tm-badge tm-idle" title="{}">{}</span>',
                _(
                    "Runs the django.tasks functions the code enqueues, never a task of its own. Who may "
                    "run it decides who may see and stop their results."
                ),
                _("django.tasks calls"),
            )
        if reason:
            return format_html(
                '<span class="tm-badge tm-failed" title="{}">{}</span>', reason, _("blocked by settings")
            )
        if not obj.active:
            return format_html(
                '<span class="tm-badge tm-idle" title="{}">{}</span>',
                policy.inactive_reason(obj.app_name, obj.name, obj.is_function),
                _("inactive"),
            )
        if obj.locked_arguments and not obj.approved_arguments.exists():
            return format_html(
                '<span class="tm-badge tm-warnings" title="{}">{}</span>',
                _("Its arguments are locked and no argument string is approved: no task of it can run."),
                _("locked, none approved"),
            )
        return display.badge("ok", _("yes"))

    @admin.display(description=_("syntax"))
    def syntax(self, obj):
        if not obj.pk:
            return display.EMPTY
        return format_html('<pre class="tm-syntax">{}</pre>', taskfunctions.usage(obj))

    # A command still used by a task cannot be deleted: Task.command is a
    # PROTECT foreign key, so the admin's delete page and bulk action refuse
    # and list the tasks that use it (no permission override, which would
    # answer a bare 403 or claim the user lacks a permission).


class ReadOnlyInline(admin.TabularInline):
    """An inline that only lists rows: none can be added, changed or deleted there.

    Subclasses set ``fields`` and ``readonly_fields = fields``.
    """

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TaskInline(ReadOnlyInline):
    """The tasks of a category, read-only, with their status (category page)."""

    model = Task
    fields = [
        "name",
        "command",
        "status_badge",
        "last_result_badge",
        "last_datetime_display",
        "next_datetime_display",
    ]
    readonly_fields = fields
    show_change_link = True
    last_datetime_display = display.datetime_column(Task, "last_datetime")
    next_datetime_display = display.datetime_column(Task, "next_datetime")
    verbose_name_plural = _("tasks in this category")

    def get_queryset(self, request):
        return super().get_queryset(request).offered().select_related("command")

    @admin.display(description=_("status"))
    def status_badge(self, obj):
        return display.badge(obj.status, obj.get_status_display())

    @admin.display(description=_("last result"))
    def last_result_badge(self, obj):
        return display.result_badge(obj.last_result, obj.get_last_result_display(), obj.last_end_kind)


@admin.register(TaskCategory)
class TaskCategoryAdmin(BusyDatabaseMixin, TaskCountMixin, admin.ModelAdmin):
    Media = TaskManagerMedia
    list_display = ["name", "task_count", "tasks_link"]
    search_fields = ["name"]
    inlines = [TaskInline]

    @admin.display(description=_("task list"))
    def tasks_link(self, obj):
        url = reverse("admin:taskmanager_task_changelist") + "?" + urlencode({"category__id__exact": obj.pk})
        return format_html('<a href="{}">{}</a>', url, _("show in the task list"))


def render_tail(report) -> str:
    rows = report.tail()
    if not rows:
        return display.EMPTY
    return format_html(
        '<pre class="tm-tail">{}</pre>',
        format_html_join(
            "\n", '<span class="tm-level-{}">{}</span>', ((r.level_name.lower(), r.text) for r in rows)
        ),
    )


class ReportColumnsMixin:
    """The report columns shared by the task page's report inline and the report pages."""

    invocation_datetime_display = display.datetime_column(Report, "invocation_datetime")
    finished_datetime_display = display.datetime_column(Report, "finished_datetime")

    # (The ordering is used by the report list; an inline's columns do not sort.)
    @admin.display(description=_("result"), ordering="result")
    def result_badge(self, obj):
        if obj.is_running:
            return format_html('<span class="tm-badge tm-started">{}</span>', _("running"))
        return display.result_badge(obj.result, obj.get_result_display(), obj.end_kind, obj.exit_code)

    @admin.display(description=_("end"), ordering="end_kind")
    def end_display(self, obj):
        """How the run ended, translated (the stored end reason is the tooltip)."""
        if obj.is_running:
            return display.EMPTY
        return format_html(
            '<span title="{}">{}</span>', obj.end_reason, display.end_text(obj) or display.EMPTY
        )

    @admin.display(description=_("last lines"))
    def log_tail(self, obj):
        return render_tail(obj)

    @admin.display(description=_("log"))
    def log_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:taskmanager_report_log", args=[obj.pk]),
            _("complete log with filters"),
        )


class ReportInline(ReportColumnsMixin, ReadOnlyInline):
    model = Report
    fields = ["result_badge", "invocation_datetime_display", "end_display", "log_tail", "log_link"]
    readonly_fields = fields
    ordering = ["-invocation_datetime", "-pk"]
    verbose_name_plural = _("reports")

    def get_queryset(self, request):
        # Each row prints its report (Report.__str__ names the task): without
        # the join that is one more query per report on the task page. Only
        # the reports the user may read (policy.may_read): the tails are what
        # the runs printed.
        return policy.readable_reports(super().get_queryset(request).select_related("task"), request.user)


def _running_report(field):
    """Subquery: ``field`` of the task's running report (None when not running)."""
    running = Report.objects.filter(task=OuterRef("pk"), finished_datetime__isnull=True).order_by(
        "-invocation_datetime", "-pk"
    )
    return Subquery(running.values(field)[:1])


def _annotated_run(task):
    """The running report's progress, as annotated by TaskAdmin.get_queryset (or None).

    None also when the user may not read the task's reports (policy.may_read):
    the progress message is what the run printed.
    """
    if getattr(task, "run_started", None) is None or not getattr(task, "run_readable", False):
        return None
    return SimpleNamespace(
        invocation_datetime=task.run_started,
        progress_done=task.run_done,
        progress_total=task.run_total,
        progress_message=task.run_message,
        progress_at=task.run_progress_at,
    )


def _deleted(values: dict) -> dict:
    """Audit changes of a deletion: every value before, nothing after."""
    return {name: [item, None] for name, item in values.items()}


#: The task fields an edit's audit entry compares (what it runs and when, and its name, category, note).
TASK_AUDIT_FIELDS = ("name", "category", "note", *RUN_FIELDS)


def _task_values(task) -> dict:
    return audit.snapshot(task, TASK_AUDIT_FIELDS)


def _report_values(report) -> dict:
    return audit.snapshot(report, ("task", "invocation_datetime", "result", "trigger", "user_name"))


@admin.register(Task)
class TaskAdmin(
    AuditHistoryMixin, BusyDatabaseMixin, SchedulingAdminMixin, OtherArgumentsMixin, admin.ModelAdmin
):
    Media = TaskManagerMedia
    form = TaskForm
    # "Save as new": a copy of the definition (the form's fields), none of the
    # run state (the model's defaults); a new name, and the rights of an add.
    save_as = True
    change_form_template = "admin/taskmanager/task/change_form.html"
    # Compact columns, so that the list fits a 1280-1400 px window with the
    # admin's navigation sidebar open: command and category under the name,
    # the duration under the last execution, both counts in one column, short
    # dates, and no foreign key or date field column (the admin never wraps
    # those).
    list_display = [
        "task_name",
        "status_badge",
        "last_result_badge",
        "counts",
        "last_run",
        "next_run",
    ]
    list_filter = ["category", "status", "last_result", display.RepetitionFilter, display.AppNameFilter]
    search_fields = ["name", "command__name", "note", "category__name"]
    list_select_related = ["command", "category"]
    ordering = ["name"]
    actions = ["start_tasks", "stop_tasks", "run_tasks_now"]
    inlines = [ReportInline]
    #: The read-only "Last execution" fields (the section adds the spool entry last).
    LAST_EXECUTION_FIELDS = [
        "live_status",
        "last_datetime_display",
        "last_result_badge",
        "last_duration_display",
        "next_datetime_display",
        "errors",
        "warnings",
    ]
    fieldsets = [
        (
            _("Definition"),
            {
                "fields": [
                    "name",
                    "command",
                    "arguments",
                    "command_line_preview",
                    "category",
                    "note",
                    "timeout",
                    "notify",
                    "queue",
                ]
            },
        ),
        (
            _("Scheduling"),
            {"fields": ["scheduling", "repetition_period", "repetition_rate", "schedule_preview"]},
        ),
        # The spool entry last: for whoever debugs the spooler.
        (_("Last execution"), {"fields": [*LAST_EXECUTION_FIELDS, "spool_entry"]}),
        (_("Last runs"), {"fields": ["runs_chart"]}),
    ]
    readonly_fields = [
        "command_line_preview",
        "schedule_preview",
        "spool_entry",
        *LAST_EXECUTION_FIELDS,
        "runs_chart",
    ]
    # Sections that only mean something once the task exists.
    ADD_HIDDEN_SECTIONS = 2

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            # No preview before the first save: the arguments are not checked yet.
            fieldsets = [
                (title, {**options, "fields": [f for f in options["fields"] if f != "command_line_preview"]})
                for title, options in fieldsets[: -self.ADD_HIDDEN_SECTIONS]
            ]
        elif obj.is_carrier:
            # A function's carrier task is never started nor edited (render_change_form says
            # so): what it was last and its runs, not the fields and previews of a definition.
            carrier_fields = {"name", "command", "note"}
            fieldsets = [
                (title, {**options, "fields": [f for f in options["fields"] if f in carrier_fields]})
                for title, options in fieldsets[:1]
            ] + list(fieldsets[2:])
        return fieldsets

    def get_inlines(self, request, obj):
        # A task being added has no reports yet.
        return super().get_inlines(request, obj) if obj is not None else []

    def get_queryset(self, request):
        # The running report's progress rides along as annotations, so the
        # task list needs no query per row (see tests/test_admin.py).
        return (
            super()
            .get_queryset(request)
            .annotate(
                run_started=_running_report("invocation_datetime"),
                run_done=_running_report("progress_done"),
                run_total=_running_report("progress_total"),
                run_message=_running_report("progress_message"),
                run_progress_at=_running_report("progress_at"),
                run_readable=Exists(policy.readable_commands(request.user).filter(pk=OuterRef("command_id"))),
            )
        )

    # -- columns and read-only fields --------------------------------------------
    def _live(self, obj, with_url=True):
        return format_html(
            '<span class="tm-live" data-task="{}" data-status="{}" data-url="{}" data-poll="{}">{}</span>',
            obj.pk,
            obj.status,
            reverse("admin:taskmanager_task_status"),
            app_settings.ADMIN_POLL_MS,
            display.live_status(obj, _annotated_run(obj)),
        )

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        return format_html("{}{}", self._live(obj), self.entry_hint(obj))

    @admin.display(description=_("last result"), ordering="last_result")
    def last_result_badge(self, obj):
        return format_html(
            '<span class="tm-live-result" data-task="{}">{}</span>',
            obj.pk,
            display.result_badge(obj.last_result, obj.get_last_result_display(), obj.last_end_kind),
        )

    last_datetime_display = display.datetime_column(Task, "last_datetime")
    next_datetime_display = display.datetime_column(Task, "next_datetime")

    @admin.display(description=_("duration"), ordering="last_duration")
    def last_duration_display(self, obj):
        return display.format_duration(obj.last_duration)

    @admin.display(description=_("task"), ordering="name")
    def task_name(self, obj):
        command = _("%(command)s (%(app)s)") % {"command": obj.command.name, "app": obj.command.app_name}
        if obj.command.is_function:
            command = _("%(function)s(), a task function of %(app)s") % {
                "function": obj.command.name,
                "app": obj.command.app_name,
            }
        return format_html(
            '{}<span class="tm-sub" title="{}">{}{}</span>{}',
            obj.name,
            command,
            "%s()" % obj.command.name if obj.command.is_function else obj.command.name,
            " · %s" % obj.category.name if obj.category_id else "",
            display.cannot_run(policy.command_refusal(obj.command)),
        )

    @admin.display(description=_("errors / warnings"), ordering="errors")
    def counts(self, obj):
        return display.counts(obj.errors, obj.warnings) if obj.last_result else display.EMPTY

    @admin.display(description=_("last execution"), ordering="last_datetime")
    def last_run(self, obj):
        if obj.last_datetime is None:
            return display.EMPTY
        return format_html(
            '{}<span class="tm-sub">{}</span>',
            display.compact_datetime(obj.last_datetime),
            display.format_duration(obj.last_duration),
        )

    @admin.display(description=_("next execution"), ordering="next_datetime")
    def next_run(self, obj):
        # How often it runs under the time: periodic tasks stand out (issue 16, item 11).
        return format_html(
            "{}{}", display.compact_datetime(obj.next_datetime), display.repeats(obj, periodic_only=True)
        )

    @admin.display(description=_("status"))
    def live_status(self, obj):
        if obj is None or obj.pk is None:
            return display.EMPTY
        return format_html(
            '{}<span class="tm-live-notice" hidden>{} <a href="">{}</a></span>',
            self._live(obj),
            _("The status changed."),
            _("Reload the page to see the latest report."),
        )

    @admin.display(description=_("command line"))
    def command_line_preview(self, obj):
        if obj is None or obj.command_id is None:
            return display.EMPTY
        try:
            argv = callargs.argv_of(obj.command, obj.arguments)
        except arguments.ArgumentsError as exc:
            return format_html('<span class="errornote">{}</span>', exc)
        return format_html(
            '<code class="tm-command-line">{}</code><div class="tm-help">{}</div>',
            callargs.run_line(obj.command, argv),
            _("The call the task makes (updated when the task is saved).")
            if obj.command.is_function
            else _("The exact command line the task runs (updated when the task is saved)."),
        )

    @admin.display(description=_("durations and results"))
    def runs_chart(self, obj):
        if obj is None or obj.pk is None:
            return display.EMPTY
        runs = history.last_runs(obj.pk)
        return format_html("{}{}", display.runs_chart(runs), display.chart_legend() if runs else "")

    # -- actions ---------------------------------------------------------------
    def get_actions(self, request):
        found = super().get_actions(request)
        if not _can_run(request):
            for name in ("start_tasks", "stop_tasks", "run_tasks_now"):
                found.pop(name, None)
        return found

    def response_action(self, request, queryset, *args, **kwargs):
        # Django filters the list by the posted ids as they are: a hand-made
        # one that is no id ("x", "", a 30-digit number) raises in the query (a 500).
        # Django 6.1 passes action_location too (*args, **kwargs: 5.2 does not).
        if not all(_is_pk(pk) for pk in request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)):
            self.message_user(
                request,
                _("Items must be selected in order to perform actions on them. No items have been changed."),
                messages.WARNING,
            )
            return None
        return super().response_action(request, queryset, *args, **kwargs)

    def _bulk(self, request, queryset, action):
        for task in queryset.select_related("command"):
            outcome = action(task, request.user)
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.ok else messages.WARNING)

    #: Most refusals the Start action lists one by one (the summary counts them all).
    MAX_REFUSALS_SHOWN = 50

    @admin.action(description=_("Start selected tasks"), permissions=["run"])
    def start_tasks(self, request, queryset):
        # One transaction for the selected tasks, a summary, and why each refused one did not start.
        result = bulkstart.start_many(queryset, request.user)
        self.message_user(request, result.summary(), messages.SUCCESS if result.ok else messages.WARNING)
        for outcome in result.refused[: self.MAX_REFUSALS_SHOWN]:
            self.message_user(request, outcome.message, messages.WARNING)
        more = len(result.refused) - self.MAX_REFUSALS_SHOWN
        if more > 0:
            self.message_user(
                request,
                ngettext(
                    "… and %(count)d more task could not start.",
                    "… and %(count)d more tasks could not start.",
                    more,
                )
                % {"count": more},
                messages.WARNING,
            )

    @admin.action(description=_("Stop selected tasks"), permissions=["run"])
    def stop_tasks(self, request, queryset):
        self._bulk(request, queryset, actions.stop)

    @admin.action(description=_("Run selected tasks now"), permissions=["run"])
    def run_tasks_now(self, request, queryset):
        self._bulk(request, queryset, actions.run_now)

    def has_run_permission(self, request, obj=None):
        return _can_run(request)

    # -- saving ----------------------------------------------------------------
    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        # The form class is made for this request: the user is this request's.
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        defined = set(RUN_FIELDS) & set(form.changed_data)
        now = dbclock.now()
        # The values before, read in the save's transaction (TaskForm locked the row).
        before = (
            _task_values(Task.objects.select_related("command", "category").get(pk=obj.pk)) if change else {}
        )
        if change:
            # Write only the form's fields: status, tokens and next run belong
            # to the spoolers, which may have changed them since this page
            # loaded the task (a full save would bring back a stale token).
            # Nor the fields the form disabled (forms.TaskForm: what a user who
            # may not run the task's command cannot change): their value is the
            # row as this request read it, cut to the widget's precision, and
            # writing it back would change what the task runs in the name of
            # someone who may not, undoing an edit made meanwhile.
            writable = {name for name, field in form.fields.items() if not field.disabled}
            obj.save(
                update_fields=[
                    f.name
                    for f in obj._meta.concrete_fields
                    if f.name in form.cleaned_data and f.name in writable
                ]
            )
            if defined:
                # A new version of what the task runs: buttons of pages that
                # showed the old one are refused (actions.start).
                Task.objects.filter(pk=obj.pk).update(
                    version=F("version") + 1, definition_changed_by=request.user, definition_changed_at=now
                )
                obj.refresh_from_db(fields=["version", "definition_changed_by", "definition_changed_at"])
        else:
            obj.definition_changed_by = request.user
            obj.definition_changed_at = now
            super().save_model(request, obj, form, change)
        watched = {"scheduling", "repetition_period", "repetition_rate", "command", "arguments"}
        outcome = cancelled = None
        if change and "command" in defined:
            # A queued run with other arguments was chosen for the old command.
            cancelled = actions.cancel_other_arguments(obj, before.get("command") or "")
            if cancelled is not None:
                self.message_user(request, cancelled.message, messages.WARNING)
        if change and watched & defined:
            outcome = actions.reschedule(obj, request.user)
            if outcome is not None:
                self.message_user(
                    request, outcome.message, messages.SUCCESS if outcome.ok else messages.WARNING
                )
        after = _task_values(Task.objects.select_related("command", "category").get(pk=obj.pk))
        if not change:
            # A new task: the fields it was given.
            after = {name: item for name, item in after.items() if item not in (None, "")}
        changes = audit.diff(before, after)
        if changes or not change:
            audit.record(
                audit.Action.EDIT if change else audit.Action.CREATE,
                obj,
                user=request.user,
                changes=changes,
                message=" ".join(
                    part
                    for part in (
                        # Stored in English, shown in the reader's language (audit_display).
                        audit_display.DEFINITION_VERSION % {"version": obj.version} if defined else "",
                        outcome.message if outcome is not None else "",
                        cancelled.message if cancelled is not None else "",
                    )
                    if part
                ),
            )

    # -- extra views -----------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("status/", wrap(self.status_view), name="taskmanager_task_status"),
            path("<path:object_id>/start/", wrap(self.start_view), name="taskmanager_task_start"),
            path("<path:object_id>/stop/", wrap(self.stop_view), name="taskmanager_task_stop"),
            path("<path:object_id>/run-now/", wrap(self.run_now_view), name="taskmanager_task_run_now"),
        ] + super().get_urls()

    def _button_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not _can_run(request):
            raise PermissionDenied
        # A crafted id ("abc", "1.5") must be a 404, not a ValueError. The
        # read is prepared once per process (startsql: a press's hot path).
        task = startsql.read_task(int(object_id)) if _is_pk(object_id) else None
        if task is None:
            raise Http404(_("This task does not exist (any more)."))
        if not _may_stop(request, task):
            # Start, Stop and Run now need the same rights on the task's command.
            raise PermissionDenied
        kwargs = {}
        if action is not actions.stop:
            # The definition version the page showed (see Task.version).
            version = request.POST.get("version", "")
            if version:
                if not _is_pk(version):
                    raise PermissionDenied
                kwargs["version"] = int(version)
        outcome = action(task, request.user, **kwargs)
        self.message_user(request, outcome.message, messages.SUCCESS if outcome.ok else messages.WARNING)
        return HttpResponseRedirect(reverse("admin:taskmanager_task_change", args=[task.pk]))

    def start_view(self, request, object_id):
        return self._button_view(request, object_id, actions.start)

    def stop_view(self, request, object_id):
        return self._button_view(request, object_id, actions.stop)

    def run_now_view(self, request, object_id):
        return self._button_view(request, object_id, actions.run_now)

    #: Most tasks one status request may ask about.
    STATUS_MAX_IDS = 500

    def status_view(self, request):
        """Return JSON with the live status (badge + progress bar HTML) of the tasks in ``?ids=1,2``.

        The shape: ``{"tasks": {"<id>": {"status": "STARTED", "running": true,
        "percent": 40.0 | null, "status_html": "...", "result_html": "...",
        "cells": {"<column>": "...", ...}}}}``: ``cells`` are the task list's
        cells and the task page's fields (:meth:`live_cells`), replaced whole.
        Needs the view permission on tasks; polled by taskmanager.js.
        """
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        ids = [int(x) for x in (x.strip() for x in request.GET.get("ids", "").split(",")) if _is_pk(x)]
        tasks = self.get_queryset(request).filter(pk__in=ids[: self.STATUS_MAX_IDS])
        data = {}
        for task in tasks:
            run = _annotated_run(task)
            running = task.status == Task.Status.STARTED
            data[str(task.pk)] = {
                "status": task.status,
                "running": running,
                "percent": display.progress.percent(run.progress_done, run.progress_total) if run else None,
                "status_html": display.live_status(task, run),
                "result_html": display.result_badge(
                    task.last_result, task.get_last_result_display(), task.last_end_kind
                ),
                "cells": self.live_cells(request, task),
            }
        response = JsonResponse({"tasks": data})
        response["Cache-Control"] = "no-store"
        return response

    def live_cells(self, request, task) -> dict:
        """Return ``{column or field: HTML}`` of what changes as ``task`` runs, as its pages render it.

        The task list's columns (but the links to the task: a rename shows at
        the next load) and the task page's "Last execution" fields (but the
        live status itself): status, result, counts, last and next execution.
        taskmanager.js puts them back in place, so no cell stays stale
        (issue 16). Rendered the way the admin's ``items_for_result`` and
        read-only fields do, so each rule is written once, in its column.
        """
        list_display = self.get_list_display(request)
        links = set(self.get_list_display_links(request, list_display) or ())
        names = [name for name in list_display if name != "action_checkbox" and name not in links]
        names += [name for name in self.LAST_EXECUTION_FIELDS if name != "live_status" and name not in names]
        cells = {}
        for name in names:
            field, attr, value = lookup_field(name, task, self)
            empty = getattr(attr, "empty_value_display", self.get_empty_value_display())
            if field is None or field.auto_created:
                html = display_for_value(value, empty, getattr(attr, "boolean", False))
            else:
                html = display_for_field(value, field, empty)
            cells[name] = conditional_escape(html)
        return cells

    def audit_changes_shown(self, request, object_id):
        """A Run now with other arguments shows the run's arguments only to who may read the command's reports.

        They are a run's text, shown on its report to its readers only
        (docs/security.rst, "Read rights"); the history page is open to
        whoever may view the task.
        """
        task = (
            Task.objects.select_related("command").filter(pk=object_id).first() if _is_pk(object_id) else None
        )
        if task is not None and policy.may_read(request.user, task.command):
            return lambda entry: entry.changes
        hidden = _("(other arguments: shown to those who may read this command's reports)")

        def shown(entry):
            changes = entry.changes or {}
            if entry.action != audit.Action.RUN_NOW or "arguments" not in changes:
                return changes
            return {**changes, "arguments": [changes["arguments"][0], hidden]}

        return shown

    # -- carrier tasks of django.tasks functions --------------------------------
    # They hold the reports of a function's runs (its log, history, rights):
    # reached from a report, read-only, with no Start, Stop or Run now (the
    # code enqueues the calls; one call's run is stopped from its result's
    # page). The list leaves them out and says where they are.
    def get_changelist(self, request, **kwargs):
        return _TaskChangeList

    def changelist_view(self, request, extra_context=None):
        # Said (and linked) only to who may see Task results: to others the link is a 403.
        results = self.admin_site.get_model_admin(DjangoTaskResult)
        carriers = results.has_view_permission(request) and Task.objects.filter(carrier_tasks()).count()
        extra_context = {**(extra_context or {}), "carrier_tasks": carriers}
        return super().changelist_view(request, extra_context)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_carrier:
            return False
        return super().has_change_permission(request, obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        carrier = obj is not None and obj.is_carrier
        context["is_carrier"] = carrier
        context["can_run_task"] = (
            not carrier and _can_run(request) and (obj is None or _may_stop(request, obj))
        )
        form = context.get("adminform").form if context.get("adminform") else None
        notices = [getattr(form, "definition_locked_reason", "")]
        if carrier:
            notices.append(
                _(
                    "This task carries the runs of the django.tasks function %(path)s: the code "
                    "enqueues them, and each one is in Task results (Stop is on a running result's "
                    "page). It cannot be started or changed here."
                )
                % {"path": obj.name.removeprefix(DjangoTaskResult.CARRIER_PREFIX)}
            )
        elif obj is not None:
            refusal = policy.command_refusal(obj.command)
            if refusal:
                notices.append(_("This task cannot run. %(reason)s") % {"reason": refusal})
        context["task_notices"] = [notice for notice in notices if notice]
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- deleting ------------------------------------------------------------
    # Deleting a waiting or running task ends its run: that needs the right to
    # Stop it. The run is stopped first (a pending run cancelled, a running
    # command asked to terminate), then the task is deleted.
    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        if obj is not None and _is_waiting_or_running(obj):
            return _can_run(request) and _may_stop(request, obj)
        return True

    def delete_model(self, request, obj):
        if _is_waiting_or_running(obj):
            actions.stop(obj, request.user)
        audit.record(audit.Action.DELETE, obj, user=request.user, changes=_deleted(_task_values(obj)))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        tasks = list(queryset.select_related("command", "category"))
        if any(
            _is_waiting_or_running(t) and not (_can_run(request) and _may_stop(request, t)) for t in tasks
        ):
            raise PermissionDenied
        for task in tasks:
            if _is_waiting_or_running(task):
                actions.stop(task, request.user)
            audit.record(audit.Action.DELETE, task, user=request.user, changes=_deleted(_task_values(task)))
        super().delete_queryset(request, queryset)


@admin.register(Report)
class ReportAdmin(BusyDatabaseMixin, ReportColumnsMixin, admin.ModelAdmin):
    Media = TaskManagerMedia
    # Compact columns, so that the list fits a 1400 px window with the admin's
    # navigation sidebar open (issue 16): the start with the duration under
    # it; the finish time is on the report's page.
    list_display = [
        "task",
        "result_badge",
        "started_run",
        "end_display",
        "trigger",
    ]
    list_filter = ["result", "end_kind", "trigger", "task__category"]
    search_fields = ["task__name"]
    list_select_related = ["task"]
    date_hierarchy = "invocation_datetime"
    # The report page: the list's columns first.
    fields = [
        "task",
        "result_badge",
        "invocation_datetime_display",
        "finished_datetime_display",
        "end_display",
        "trigger",
        "started_by_display",
        "defined_by_display",
        "command_line",
        "arguments_display",
        "host",
        "pid",
        "stopped_by",
        "lines",
        "warnings",
        "errors",
        "skipped_runs",
        "log_tail",
        "log_link",
    ]
    readonly_fields = [*fields, "task_result_link"]

    def get_fields(self, request, obj=None):
        """The report's fields; a django.tasks call's run links its task result after its command line."""
        fields = list(super().get_fields(request, obj))
        if obj is not None and obj.task.is_carrier:
            fields.insert(fields.index("command_line") + 1, "task_result_link")
        return fields

    # -- read rights: who may see the command reads its reports (policy.may_read)
    def get_queryset(self, request):
        return policy.readable_reports(super().get_queryset(request), request.user)

    def get_object(self, request, object_id, from_field=None):
        """The report, or None if there is none; PermissionDenied (403) for one the user may not read.

        The log viewer's views use it too (logviews.get_report).
        """
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            field = self.model._meta.pk if from_field is None else self.model._meta.get_field(from_field)
            try:
                exists = self.model._default_manager.filter(
                    **{field.name: field.to_python(object_id)}
                ).exists()
            except (ValidationError, ValueError):
                exists = False
            if exists:
                raise PermissionDenied
        return obj

    def has_view_permission(self, request, obj=None):
        if not super().has_view_permission(request, obj):
            return False
        return obj is None or policy.may_read(request.user, obj.task.command)

    @admin.display(description=_("task result"))
    def task_result_link(self, obj):
        """The page of the django.tasks result this run ran (the result's page enforces its own rights)."""
        result = DjangoTaskResult.objects.filter(report_id=obj.pk).values_list("pk", flat=True).first()
        if result is None:
            return display.EMPTY
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:taskmanager_djangotaskresult_change", args=[result]), result
        )

    @admin.display(description=_("arguments"))
    def arguments_display(self, obj):
        """The task's own arguments, or the one-off ones of a Run now with other arguments."""
        if obj.arguments_override is None:
            return _("the task's own")
        return format_html(
            "<code>{}</code> {}",
            obj.arguments_override,
            _("(one-off: Run now with other arguments; the task kept its own)"),
        )

    @admin.display(description=pgettext_lazy("report list", "started"), ordering="invocation_datetime")
    def started_run(self, obj):
        """When the run started, and under it how long it took (nothing under it while it runs)."""
        ended = obj.finished_datetime
        return format_html(
            "{}{}",
            display.compact_datetime(obj.invocation_datetime),
            format_html(
                '<span class="tm-sub">{}</span>',
                display.format_duration(ended - obj.invocation_datetime),
            )
            if ended
            else "",
        )

    @admin.display(description=_("started by"))
    def started_by_display(self, obj):
        # The username is kept when the user is deleted.
        name = obj.user.get_username() if obj.user_id else obj.user_name
        return name or _("the project's code")

    @admin.display(description=_("defined by"))
    def defined_by_display(self, obj):
        """Who last defined what the run ran, and the definition's version."""
        name = obj.defined_by.get_username() if obj.defined_by_id else obj.defined_by_name
        if obj.definition_version is None:
            return name or display.EMPTY
        return _("%(who)s (definition version %(version)s)") % {
            "who": name or display.EMPTY,
            "version": obj.definition_version,
        }

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    # Deleting a running report ends its run: that needs the right to Stop it
    # (the same rights on the task's command as Start). The run is stopped
    # first, then the report is deleted.
    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        if obj is not None and obj.is_running:
            return _can_run(request) and _may_stop(request, obj.task)
        return True

    def delete_model(self, request, obj):
        if obj.is_running:
            actions.stop(obj.task, request.user)
        audit.record(audit.Action.DELETE, obj, user=request.user, changes=_deleted(_report_values(obj)))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        running = list(queryset.filter(finished_datetime__isnull=True).select_related("task__command"))
        if any(not (_can_run(request) and _may_stop(request, r.task)) for r in running):
            raise PermissionDenied
        for report in running:
            actions.stop(report.task, request.user)
        for report in queryset.select_related("task"):
            audit.record(
                audit.Action.DELETE, report, user=request.user, changes=_deleted(_report_values(report))
            )
        super().delete_queryset(request, queryset)

    def get_urls(self):
        # The log viewer: page, live follow (JSON) and download (taskmanager.logviews).
        return logviews.urls(self) + super().get_urls()


#: Per database alias: whether it can group dates in the project's time zone (see _dates_work).
_DATES_WORK: dict[str, bool] = {}


def _dates_work(alias: str = "default") -> bool:
    """Whether the database can group dates in the project's time zone (the date drill-down).

    MySQL and MariaDB need their time zone tables for it (``CONVERT_TZ``
    answers NULL without them and Django raises "Database returned an invalid
    datetime value"); asked once per process.
    """
    if alias not in _DATES_WORK:
        connection = connections[alias]
        works = True
        if connection.vendor == "mysql" and settings.USE_TZ:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT CONVERT_TZ('2000-01-01 00:00:00', 'UTC', %s)", [settings.TIME_ZONE]
                    )
                    works = cursor.fetchone()[0] is not None
            except DatabaseError:
                works = False
        _DATES_WORK[alias] = works
    return _DATES_WORK[alias]


class _AuditChangeList(ChangeList):
    """The audit list, without the date drill-down where the database cannot group dates (_dates_work)."""

    def __init__(
        self, request, model, list_display, list_display_links, list_filter, date_hierarchy, *args, **kw
    ):
        if not _dates_work():
            date_hierarchy = None
        super().__init__(
            request, model, list_display, list_display_links, list_filter, date_hierarchy, *args, **kw
        )


@admin.register(AuditEntry)
class AuditEntryAdmin(WrittenByTheAppMixin, BusyDatabaseMixin, admin.ModelAdmin):
    """The audit list: read-only for everyone, superusers included; needs ``view_auditentry``."""

    Media = TaskManagerMedia
    list_display = [
        "when_display",
        "actor_name",
        "action",
        "object_type",
        "object_display",
        "changes_display",
    ]
    # "when": today, the past 7 days, this month, this year (ranges: fine on every database).
    list_filter = ["action", "object_type", "actor_name", "when"]
    search_fields = ["object_repr", "actor_name", "message", "=object_id", "=task_ref"]
    date_hierarchy = "when"
    fields = [
        "when_display",
        "actor_name",
        "actor_id",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "task_ref",
        "changes_display",
        "message",
    ]
    readonly_fields = fields
    when_display = display.datetime_column(AuditEntry, "when")

    @admin.display(description=_("object"), ordering="object_repr")
    def object_display(self, obj):
        return format_html('{} <span class="tm-sub">#{}</span>', obj.object_repr, obj.object_id)

    @admin.display(description=_("before and after"))
    def changes_display(self, obj):
        return format_html("{}{}", audit_display.changes_html(obj), audit_display.message_text(obj))

    def get_changelist(self, request, **kwargs):
        return _AuditChangeList


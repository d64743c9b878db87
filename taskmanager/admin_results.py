"""The django.tasks results in the admin: a read-only list and page of ``DjangoTaskResult``, with Stop.

Each row is one enqueued call (``taskmanager.djangotasks``). Rights follow
the app's security model (``docs/security.rst``):

* **See**: Django's ``view_djangotaskresult`` (or ``change_``) *and* the
  read rights on the reports of the function runs (:func:`policy.may_read`
  over the carrier command ``_run_task_result``, for superusers only until a
  superuser opens it): a result shows what its run printed and returned,
  the same data as its report. A user without both sees no result; a page
  of one answers 403, as a report's does.
* **No add, no change, no delete** here: a row is enqueued by code, its
  arguments are what the function was called with, and it ends as its run
  ended (its retention is the reports').
* **Stop** a running result: ``POST`` with Django's CSRF token, the rights
  of a Stop (``run_task`` and the carrier command's run rights,
  :func:`policy.user_refusal`), and only that run's report is asked to stop
  (the carrier task carries every run of the function: a task Stop would
  stop them all). The supervisor terminates the child as for any Stop; the
  row ends FAILED with ``taskmanager.exceptions.Stopped``. Audited.

The page shows the arguments and return value as JSON, an error's class path
and traceback (escaped, as every value here, and redacted as the run's log
lines are: :mod:`taskmanager.redaction`; the row keeps them as they were), and links to the run's report
log (``admin:taskmanager_report_log``, which checks its own read rights).
"""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from . import audit, dbclock, display, policy, redaction
from .admin_readonly import WrittenByTheAppMixin
from .busy import BusyDatabaseMixin
from .models import Command, DjangoTaskResult, Report

CARRIER_COMMAND = DjangoTaskResult.CARRIER_COMMAND

#: The CSS class of each status's badge (taskmanager.css).
BADGES = {"READY": "spooled", "RUNNING": "started", "SUCCESSFUL": "ok", "FAILED": "failed"}


def carrier_command() -> Command:
    """The command of every function run (an unsaved one, for superusers only, before the first run)."""
    command = Command.objects.filter(app_name="taskmanager", name=CARRIER_COMMAND).first()
    return command or Command(app_name="taskmanager", name=CARRIER_COMMAND, run_by=Command.RunBy.SUPERUSERS)


def _redacted(value, redact):
    """``value`` (JSON) with every string in it, keys too, redacted as the run's log lines are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(key): _redacted(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, redact) for item in value]
    return value


def _json(value, redact) -> str:
    shown = json.dumps(_redacted(value, redact), indent=2, ensure_ascii=False)
    return format_html('<pre class="tm-json">{}</pre>', shown)


@admin.register(DjangoTaskResult)
class DjangoTaskResultAdmin(WrittenByTheAppMixin, BusyDatabaseMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["taskmanager/taskmanager.css"]}

    list_display = [
        "task_path",
        "status_badge",
        "queue_name",
        "priority",
        "enqueued_display",
        "started_display",
        "finished_display",
    ]
    list_filter = ["status", "task_path", "queue_name", "enqueued_at"]
    search_fields = ["task_path", "=id"]
    fields = [
        "id",
        "task_path",
        "status_badge",
        "queue_name",
        "priority",
        "backend",
        "run_after_display",
        "enqueued_display",
        "started_display",
        "finished_display",
        "worker_ids",
        "args_display",
        "kwargs_display",
        "return_value_display",
        "errors_display",
        "report_link",
    ]
    readonly_fields = fields

    enqueued_display = display.datetime_column(DjangoTaskResult, "enqueued_at")
    started_display = display.datetime_column(DjangoTaskResult, "started_at")
    finished_display = display.datetime_column(DjangoTaskResult, "finished_at")
    run_after_display = display.datetime_column(DjangoTaskResult, "run_after")

    # -- rights (see the module's docstring)
    def get_queryset(self, request):
        results = super().get_queryset(request)
        return results if policy.may_read(request.user, carrier_command()) else results.none()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and policy.may_read(request.user, carrier_command())

    def get_object(self, request, object_id, from_field=None):
        """The row, or None if there is none; PermissionDenied (403) for one the user may not see."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None and DjangoTaskResult.objects.filter(pk=str(object_id)).exists():
            raise PermissionDenied
        return obj

    # -- columns and fields
    @property
    def redact(self):
        """The redaction of the run's log (:mod:`taskmanager.redaction`) for these settings and environment.

        The row keeps the values as the function got and returned them (the
        API's); what a page shows of them is redacted, as their log lines are.
        Asked for at each use (the process keeps it while no setting and no
        environment variable changed): a settings change is seen at once.
        """
        return redaction.redactor()[0]

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        return display.badge(BADGES.get(obj.status, obj.status), obj.get_status_display())

    @admin.display(description=_("positional arguments"))
    def args_display(self, obj):
        return _json(obj.args, self.redact)

    @admin.display(description=_("keyword arguments"))
    def kwargs_display(self, obj):
        return _json(obj.kwargs, self.redact)

    @admin.display(description=_("return value"))
    def return_value_display(self, obj):
        if obj.status != DjangoTaskResult.Status.SUCCESSFUL:
            return display.EMPTY
        return _json(obj.return_value, self.redact)

    @admin.display(description=_("errors"))
    def errors_display(self, obj):
        if not obj.errors:
            return display.EMPTY
        return format_html_join(
            "",
            '<p><code>{}</code></p><pre class="tm-traceback">{}</pre>',
            (
                (self.redact(e.get("exception_class_path", "")), self.redact(e.get("traceback", "")))
                for e in obj.errors
            ),
        )

    @admin.display(description=_("log"))
    def report_link(self, obj):
        if obj.report_id is None:
            return _("no report (not run yet, or its report was pruned)")
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:taskmanager_report_log", args=[obj.report_id]),
            _("the run's log"),
        )

    # -- Stop
    def get_urls(self):
        stop = self.admin_site.admin_view(self.stop_view)
        return [
            path("<path:object_id>/stop/", stop, name="taskmanager_djangotaskresult_stop")
        ] + super().get_urls()

    def may_stop(self, request, obj) -> bool:
        """Whether ``obj`` is running and the user may stop it (the rights of a Stop)."""
        return (
            obj.status == DjangoTaskResult.Status.RUNNING
            and obj.report_id is not None
            and policy.user_refusal(request.user, carrier_command()) is None
        )

    def stop_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(_("This task result does not exist (any more)."))
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        if policy.user_refusal(request.user, carrier_command()) is not None:
            raise PermissionDenied
        asked = obj.status == DjangoTaskResult.Status.RUNNING and (
            Report.objects.filter(
                pk=obj.report_id, finished_datetime__isnull=True, stop_requested_at__isnull=True
            ).update(stop_requested_at=dbclock.now(), stopped_by=request.user)
        )
        if asked:
            report = Report.objects.get(pk=obj.report_id)
            audit.record(
                audit.Action.STOP, report, user=request.user, message="Stop of task result %s" % obj.pk
            )
            self.message_user(request, _("The run of this task result is being stopped."), messages.SUCCESS)
        else:
            self.message_user(
                request, _("This task result is not running: nothing to stop."), messages.WARNING
            )
        return HttpResponseRedirect(reverse("admin:taskmanager_djangotaskresult_change", args=[obj.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_stop_result"] = obj is not None and self.may_stop(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

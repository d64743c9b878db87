"""The scheduling parts of the task admin: run preview and spool entry health.

* The task page shows the next runs of the schedule (local time in the
  project's ``TIME_ZONE``, daylight saving changes marked) and a
  plain-language summary: rendered on the server for the saved values, and
  refreshed by ``taskmanager/schedule_preview.js`` from the JSON endpoint
  ``schedule-preview/`` while the user edits the scheduling fields.
* A pending task whose spool entry is gone, or whose spooler node has not
  been seen for ``TASKMANAGER_NODE_TIMEOUT`` seconds, says so in the list and
  on its page instead of showing "Spooled" for ever.

:class:`SchedulingAdminMixin` adds all of it to ``TaskAdmin``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import JsonResponse
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import datetimes, dbclock, display, schedule, spoolfiles
from .conf import app_settings
from .models import SpoolerHeartbeat, Task

#: How many runs the preview lists.
PREVIEW_COUNT = 5
#: The form fields the preview reads.
SCHEDULE_FIELDS = ("scheduling", "repetition_period", "repetition_rate")


# -- the preview ----------------------------------------------------------------


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return "UTC%s%02d:%02d" % (sign, hours, minutes)


def _format_local(local: datetime) -> str:
    # The app's one format (taskmanager.datetimes), after the day of the week.
    return "%s %s" % (date_format(local, "D"), datetimes.format_datetime(local, tz=local.tzinfo))


def _format_zoned(local: datetime) -> str:
    # As the list of runs shows one (its "local" then its "zone"), for the summary above it.
    return "%s %s" % (_format_local(local), local.tzname())


def _run_notes(run: schedule.PreviewRun, anchor_local: datetime | None) -> list[str]:
    notes = []
    if run.dst_change:
        notes.append(
            _("clocks change before this run (%(before)s → %(after)s)")
            % {"before": _format_offset(run.offset_before), "after": _format_offset(run.local.utcoffset())}
        )
    if run.shifted and anchor_local is not None:
        notes.append(
            _("%(time)s does not exist on this day (clocks go forward): runs at %(actual)s")
            % {"time": anchor_local.strftime("%H:%M"), "actual": run.local.strftime("%H:%M")}
        )
    if run.repeated:
        if run.local.fold:
            notes.append(
                _("the second %(time)s of this day (clocks went back)")
                % {"time": run.local.strftime("%H:%M")}
            )
        else:
            notes.append(
                _("%(time)s occurs twice on this day: this is the first")
                % {"time": run.local.strftime("%H:%M")}
            )
    return notes


#: What a preview shows, after the task's state (see :func:`saved_basis` and
#: :func:`edit_basis`): the runs if Start were pressed at ``now``; the runs
#: from the queued run at ``now``; the runs if the edited values were saved
#: at ``now`` (replacing the queued run); the runs after the current one if
#: they were saved at ``now``; nothing (running, nothing queued after it).
BASES = ("start", "next", "save", "after", "running")


def preview_data(anchor, period, rate, now: datetime, basis: str = "start") -> dict:
    """Return the preview of a schedule as a JSON-ready dict.

    ``basis`` is one of :data:`BASES`: ``"start"`` and ``"save"`` list the
    runs from ``now`` (a saved change to a pending task is Stop then
    Start), ``"next"`` those of a task whose queued run is at ``now``,
    ``"after"`` those strictly after ``now`` and ``"running"`` none. The
    shape::

        {"ok": true, "summary": "every day from 2026-12-01 09:00",
         "timezone": "Europe/Rome", "basis": "start",
         "runs": [{"at": "<ISO 8601, UTC>", "local": "Tue 2026-12-01 09:00:00",
                   "zone": "CET", "dst_change": false, "notes": []}, ...],
         "errors": []}

    ``ok`` is false and ``errors`` lists messages when the schedule cannot be
    computed.
    """
    tz = schedule.project_tz()
    data = {"ok": True, "summary": "", "timezone": str(tz), "basis": basis, "runs": [], "errors": []}
    try:
        data["summary"] = schedule.describe(anchor, period or None, rate, tz, fmt=_format_zoned)
        if basis in ("start", "save") and anchor is not None and anchor <= now:
            if not schedule.is_periodic(period or None, rate):
                # Start runs a one-off whose time is not in the future at once
                # (schedule.first_run), as the list below shows.
                data["summary"] = (
                    _("once, as soon as started (the time given has passed)")
                    if basis == "start"
                    else _("once, as soon as saved (the time given has passed)")
                )
        runs = []
        if basis != "running":
            runs = schedule.preview(anchor, period or None, rate, now, tz, PREVIEW_COUNT + 1)
    except schedule.ScheduleError as exc:
        data.update(ok=False, errors=[str(exc)])
        return data
    if basis == "after":
        # A running task's next run is the first slot strictly after now
        # (actions._replace_next_run).
        runs = [run for run in runs if run.at > now]
    runs = runs[:PREVIEW_COUNT]
    anchor_local = anchor.astimezone(tz) if anchor is not None else None
    for run in runs:
        data["runs"].append(
            {
                "at": run.at.isoformat(),
                "local": _format_local(run.local),
                "zone": run.local.tzname(),
                "dst_change": run.dst_change,
                "notes": _run_notes(run, anchor_local),
            }
        )
    return data


def render_preview(data: dict) -> str:
    """Return the preview's inner HTML (escaped by the template)."""
    return render_to_string("admin/taskmanager/task/schedule_preview.html", {"preview": data})


def saved_basis(status: str | None, run_token: str, next_datetime: datetime | None) -> str:
    """Return the basis (:data:`BASES`) of the preview of a task's saved values.

    From the queued run when one is queued (a pending task, or a running one
    whose next run is spooled), "running" when it runs and nothing follows,
    else "start".
    """
    if status in Task.PENDING and next_datetime:
        return "next"
    if status == Task.Status.STARTED:
        return "next" if run_token and next_datetime else "running"
    return "start"


def edit_basis(status: str | None, run_token: str) -> str:
    """Return the basis (:data:`BASES`) of the preview of edited values, as saving would apply them.

    Saving reschedules (:func:`taskmanager.actions.reschedule`): a pending
    task as if started now, a running one's next run after now; an idle task
    (or a new one, ``status`` None) waits for Start, and a running one with
    nothing queued after it keeps running and waits too.
    """
    if status in Task.PENDING:
        return "save"
    if status == Task.Status.STARTED:
        return "after" if run_token else "running"
    return "start"


def saved_preview(task: Task | None, now: datetime | None = None) -> dict:
    """The preview of a saved task (or of a new one, ``task`` None), fitting its status."""
    now = now or dbclock.now()
    if task is None:
        return preview_data(None, None, None, now)
    basis = saved_basis(task.status, task.run_token, task.next_datetime)
    at = task.next_datetime if basis == "next" else now
    return preview_data(task.scheduling, task.repetition_period, task.repetition_rate, at, basis)


# -- spool entry health ------------------------------------------------------------


@dataclass
class EntryHealth:
    """What the admin knows about a task's spool entry.

    ``problem`` is None when nothing is known to be wrong, else a message.
    """

    node: str
    path: str
    problem: str | None = None


def entry_health(task: Task, node_seen: datetime | None, now: datetime | None = None) -> EntryHealth | None:
    """Check a task's spool entry as far as this process can see it.

    Return None when the task has no entry to check (idle, or running the
    last run of its chain). ``node_seen`` is the node's last heartbeat
    (``SpoolerHeartbeat.last_seen``) or None if it never reported.

    The entry is *missing* when its node is this host and the recorded file
    is not in the node's spool directory; the node is *silent* when its last
    heartbeat is older than ``TASKMANAGER_NODE_TIMEOUT`` seconds. Nodes whose
    identity is not ``host:/absolute/spool/dir`` (test backends) are not
    checked.
    """
    if not task.has_queued_run or not task.spooler_node:
        return None
    health = EntryHealth(task.spooler_node, task.spooler_id)
    host, directory = spoolfiles.split_node(task.spooler_node)
    if not directory.startswith("/"):
        return health
    now = now or dbclock.now()
    if host == socket.gethostname() and os.path.isdir(directory) and task.spooler_id:
        if not spoolfiles.is_live(task.spooler_id, directory):
            health.problem = _(
                "Its spool entry is missing from %(dir)s: it will not run until it is respooled "
                "(at the next spooler start, or with manage.py respool_tasks)."
            ) % {"dir": directory}
            return health
    timeout = app_settings.NODE_TIMEOUT
    if node_seen is None:
        health.problem = _("Its spooler node %(node)s has never reported: is it running?") % {
            "node": task.spooler_node
        }
    elif timeout and now - node_seen > timedelta(seconds=timeout):
        health.problem = _(
            "Its spooler node %(node)s was last seen at %(when)s: if it is down, another spooler node "
            "takes this task over once it is TASKMANAGER_TAKEOVER_GRACE late."
        ) % {"node": task.spooler_node, "when": datetimes.format_datetime(node_seen)}
    return health


def node_seen_subquery():
    """Annotation: the last heartbeat of the task's spooler node."""
    return Subquery(SpoolerHeartbeat.objects.filter(node=OuterRef("spooler_node")).values("last_seen")[:1])


def _node_seen(task: Task):
    if hasattr(task, "tm_node_seen"):
        return task.tm_node_seen
    return SpoolerHeartbeat.objects.filter(node=task.spooler_node).values_list("last_seen", flat=True).first()


# -- the admin mixin ---------------------------------------------------------------


class SchedulingAdminMixin:
    """Preview endpoint, preview and spool entry fields, list hint (for TaskAdmin)."""

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(tm_node_seen=node_seen_subquery())

    @property
    def media(self):
        return super().media + forms.Media(js=["taskmanager/schedule_preview.js"])

    def get_urls(self):
        return [
            path(
                "schedule-preview/",
                self.admin_site.admin_view(self.schedule_preview_view),
                name="taskmanager_task_schedule_preview",
            ),
        ] + super().get_urls()

    def schedule_preview_view(self, request):
        """Return the preview (see :func:`preview_data`, plus ``html``) for the form values in GET.

        Reads the scheduling fields as the task form would
        (``scheduling_0``/``scheduling_1``, ``repetition_period``,
        ``repetition_rate``) and changes nothing. ``task`` (an id, optional)
        is the task being edited: its status decides what saving would do
        (:func:`edit_basis`). Needs the view or add permission on tasks.
        """
        if not (self.has_view_or_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        task_id = request.GET.get("task", "")
        state = None
        if task_id.isascii() and task_id.isdigit() and len(task_id) <= 18:
            state = self.get_queryset(request).filter(pk=task_id).values("status", "run_token").first()
        basis = edit_basis(state["status"], state["run_token"]) if state else "start"
        form = self.get_form(request)(data=request.GET)
        values, errors = {}, []
        for name in SCHEDULE_FIELDS:
            if name not in form.fields:
                values[name] = None
                continue
            bound = form[name]
            try:
                values[name] = bound.field.clean(bound.data)
            except ValidationError as exc:
                values[name] = None
                errors.extend("%s: %s" % (bound.label, message) for message in exc.messages)
        if errors:
            data = {
                "ok": False,
                "summary": "",
                "timezone": str(schedule.project_tz()),
                "basis": basis,
                "runs": [],
                "errors": errors,
            }
        else:
            data = preview_data(
                values["scheduling"],
                values["repetition_period"],
                values["repetition_rate"],
                dbclock.now(),
                basis,
            )
        data["html"] = render_preview(data)
        response = JsonResponse(data)
        response["Cache-Control"] = "no-store"
        return response

    @admin.display(description=gettext_lazy("next runs"))
    def schedule_preview(self, obj):
        saved = obj if obj is not None and obj.pk else None
        return format_html(
            '<div class="tm-schedule-preview" data-url="{}" data-task="{}" aria-live="polite">{}</div>',
            reverse("admin:taskmanager_task_schedule_preview"),
            saved.pk if saved else "",
            render_preview(saved_preview(saved)),
        )

    @admin.display(description=gettext_lazy("spool file"))
    def spool_entry(self, obj):
        """The file of the queued run with its spooler node, and what is wrong with it, if anything."""
        if obj is None or obj.pk is None:
            return display.EMPTY
        health = entry_health(obj, _node_seen(obj))
        if health is None:
            if obj.has_queued_run:
                return display.EMPTY
            return format_html('{}<div class="tm-help">{}</div>', display.EMPTY, _("No run is queued."))
        node = _("spooler node: %(node)s") % {"node": health.node}
        if health.problem:
            return format_html(
                '<span class="tm-entry-problem">{}</span><div class="tm-help">{}<br>{}</div>',
                health.problem,
                health.path or display.EMPTY,
                node,
            )
        return format_html(
            '<code class="tm-spool-file">{}</code><div class="tm-help">{}</div>',
            health.path or display.EMPTY,
            node,
        )

    def entry_hint(self, obj) -> str:
        """A short warning for the task list when the entry is missing or its node silent."""
        health = entry_health(obj, _node_seen(obj))
        if health is None or not health.problem:
            return ""
        return format_html(
            ' <span class="tm-entry-problem" title="{}">⚠ {}</span>', health.problem, _("not spooled?")
        )

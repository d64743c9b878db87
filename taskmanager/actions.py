"""What Start, Stop, Run now and schedule edits do to a task (see docs/states.rst).

Each function changes the task with one conditional UPDATE checked by its
row count and returns an :class:`Outcome` whose message is meant for the
person who pressed the button. None of them raises for a state conflict.
"""

from dataclasses import dataclass

from django.utils import timezone
from django.utils.formats import localize
from django.utils.translation import gettext as _

from . import schedule
from .models import Report, Task, new_token
from .spooler import SpoolerUnavailable, get_backend


@dataclass
class Outcome:
    ok: bool
    message: str


def _when(dt) -> str:
    return localize(timezone.localtime(dt))


def _refusal(task: Task) -> Outcome:
    task.refresh_from_db()
    if task.status == Task.Status.STARTED:
        return Outcome(False, _("%(task)s is already running.") % {"task": task.name})
    if task.next_datetime:
        return Outcome(
            False,
            _("%(task)s is already scheduled for %(when)s.")
            % {"task": task.name, "when": _when(task.next_datetime)},
        )
    return Outcome(False, _("%(task)s is already scheduled.") % {"task": task.name})


def start(task: Task, user=None) -> Outcome:
    """Start an IDLE task: run it now or schedule it, as its fields say."""
    if not task.command.active:
        return Outcome(
            False,
            _("%(task)s cannot start: its command %(command)s is not active.")
            % {"task": task.name, "command": task.command.name},
        )
    now = timezone.now()
    period = task.repetition_period or None
    try:
        schedule.validate(period, task.repetition_rate)
        run_at, anchor = schedule.first_run(
            task.scheduling, period, task.repetition_rate, now, timezone.get_current_timezone()
        )
    except schedule.ScheduleError as exc:
        return Outcome(False, _("%(task)s cannot start: %(error)s") % {"task": task.name, "error": exc})
    backend = get_backend()
    token = new_token()
    future = run_at > now
    status = Task.Status.SCHEDULED if future else Task.Status.SPOOLED
    changed = Task.objects.filter(pk=task.pk, status=Task.Status.IDLE).update(
        status=status,
        run_token=token,
        next_datetime=run_at,
        scheduling=anchor,
        started_by=user if user and user.is_authenticated else None,
        spooler_node=backend.node(),
        spooler_id="",
    )
    if changed != 1:
        return _refusal(task)
    try:
        path = backend.spool(task.pk, token, Report.Trigger.START, run_at if future else None)
    except SpoolerUnavailable as exc:
        Task.objects.filter(pk=task.pk, run_token=token, status=status).update(
            status=Task.Status.IDLE, run_token="", next_datetime=None
        )
        return Outcome(False, _("%(task)s was not started: %(error)s") % {"task": task.name, "error": exc})
    Task.objects.filter(pk=task.pk, run_token=token).update(spooler_id=path)
    if future:
        return Outcome(
            True, _("%(task)s is scheduled for %(when)s.") % {"task": task.name, "when": _when(run_at)}
        )
    return Outcome(True, _("%(task)s was started.") % {"task": task.name})


def stop(task: Task, user=None) -> Outcome:
    """Cancel a pending run, or ask the supervising spooler to terminate a running one."""
    now = timezone.now()
    cancelled = Task.objects.filter(
        pk=task.pk, status__in=[Task.Status.SCHEDULED, Task.Status.SPOOLED]
    ).update(status=Task.Status.IDLE, run_token="", next_datetime=None, spooler_id="")
    if cancelled:
        return Outcome(True, _("%(task)s was stopped; its pending run is cancelled.") % {"task": task.name})
    # Clearing the token also ends a periodic chain: the run's end sets IDLE.
    running = Task.objects.filter(pk=task.pk, status=Task.Status.STARTED).update(
        run_token="", next_datetime=None, resume_status="", run_now_token=""
    )
    if running:
        Report.objects.running().filter(task=task, stop_requested_at__isnull=True).update(
            stop_requested_at=now, stopped_by=user if user and user.is_authenticated else None
        )
        return Outcome(True, _("%(task)s is being stopped.") % {"task": task.name})
    return Outcome(False, _("%(task)s is not running nor scheduled.") % {"task": task.name})


def run_now(task: Task, user=None) -> Outcome:
    """Run the task once at once, leaving its schedule and status as they are."""
    if not task.command.active:
        return Outcome(
            False,
            _("%(task)s cannot run: its command %(command)s is not active.")
            % {"task": task.name, "command": task.command.name},
        )
    token = new_token()
    changed = Task.objects.filter(
        pk=task.pk,
        run_now_token="",
        status__in=[Task.Status.IDLE, Task.Status.SCHEDULED, Task.Status.SPOOLED],
    ).update(run_now_token=token, started_by=user if user and user.is_authenticated else None)
    if changed != 1:
        task.refresh_from_db()
        if task.status == Task.Status.STARTED:
            return Outcome(False, _("%(task)s is already running.") % {"task": task.name})
        return Outcome(False, _("%(task)s is already queued to run now.") % {"task": task.name})
    try:
        get_backend().spool(task.pk, token, Report.Trigger.RUN_NOW, None)
    except SpoolerUnavailable as exc:
        Task.objects.filter(pk=task.pk, run_now_token=token).update(run_now_token="")
        return Outcome(False, _("%(task)s was not run: %(error)s") % {"task": task.name, "error": exc})
    return Outcome(True, _("%(task)s will run now.") % {"task": task.name})


def reschedule(task: Task) -> Outcome | None:
    """After an edit, replace a pending task's spool entry with one for its new schedule.

    Return None when the task is not pending (nothing to do).
    """
    if task.status not in (Task.Status.SCHEDULED, Task.Status.SPOOLED):
        return None
    old = Task.objects.filter(pk=task.pk).values_list("run_token", flat=True).first()
    if not old:
        return None
    # Stop then start, so that every rule of Start applies to the new schedule.
    Task.objects.filter(pk=task.pk, run_token=old).update(
        status=Task.Status.IDLE, run_token="", next_datetime=None
    )
    task.refresh_from_db()
    return start(task, task.started_by)

"""Notices about runs that end badly, and about tasks that recover.

At the end of a run (after the report and the task are saved, see
``runner.Supervisor``) :func:`notify_run_end` decides whether a notice is due
and sends it on every configured channel:

* a **failure** notice when the result is in ``TASKMANAGER_NOTIFY_ON``
  (``["FAILED"]`` by default; add ``"ERRORS"`` and ``"WARNINGS"`` to be told
  about those too), unless a user stopped the run or the task's *send
  notifications* box is unticked;
* a **recovered** notice when a task that sent a failure notice next ends
  with a result not in ``NOTIFY_ON`` (``TASKMANAGER_NOTIFY_RECOVERED``).
  ``Task.failure_notified`` remembers that a failure notice went out: every
  failing run sends its notice, and the first good run after them sends one
  "recovered" notice.

And about runs that did not happen: the periodic recovery
(:mod:`taskmanager.recovery.overdue`) sends one **overdue** notice for a
pending task whose next execution is more than ``TASKMANAGER_OVERDUE_GRACE``
seconds in the past (``Task.overdue_notified_at`` remembers it), and the end
of the task's next run sends a **recovered** notice (:func:`overdue_recovered`).

Channels, each used when configured (see ``docs/notifications.rst``):

* e-mail through Django's mail framework, to ``NOTIFY_EMAIL_RECIPIENTS`` or
  ``settings.ADMINS``;
* Slack, with the official ``slack_sdk`` (the ``slack`` extra),
  ``chat.postMessage`` to ``NOTIFY_SLACK_CHANNEL``;
* a JSON ``POST`` to ``NOTIFY_WEBHOOK_URL`` (the shape is :meth:`Notice.payload`).

Each channel gets ``NOTIFY_TIMEOUT`` seconds. A channel that fails is
logged (logger ``taskmanager.notifications``) and the others still send;
nothing here ever raises into the runner or changes a run's result.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import F, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from . import __version__
from .conf import app_settings
from .models import Report, Task

logger = logging.getLogger("taskmanager.notifications")

FAILURE = "failure"
RECOVERED = "recovered"
OVERDUE = "overdue"
#: Log lines quoted at the end of a notice.
TAIL_LINES = 10
_HEADLINES = {
    "FAILED": "Task %(task)s failed",
    "ERRORS": "Task %(task)s ended with errors",
    "WARNINGS": "Task %(task)s ended with warnings",
}


def _site_url(viewname: str, pk) -> str:
    """Return the admin URL ``viewname`` of ``pk``, ``NOTIFY_SITE_URL`` in front; "" if the admin has no such URL."""
    try:
        path = reverse(viewname, args=[pk])
    except NoReverseMatch:
        return ""
    return (app_settings.NOTIFY_SITE_URL or "").rstrip("/") + path


@dataclass
class Notice:
    """One notice about one run: ``kind`` is ``"failure"`` or ``"recovered"``.

    Or about a run that did not happen: ``kind`` ``"overdue"``, no report,
    ``due`` the missed next execution; its ``"recovered"`` notice has
    ``cause`` ``"overdue"`` and the report of the run that came at last.
    """

    kind: str
    task: Task
    report: Report | None
    due: datetime | None = None
    cause: str = ""

    @property
    def headline(self) -> str:
        if self.kind == OVERDUE:
            return "Task %s is overdue: its run due at %s did not happen" % (
                self.task.name,
                self._when(self.due),
            )
        if self.cause == OVERDUE:
            return "Task %s runs again (%s)" % (self.task.name, self.report.result or "started")
        if self.kind == RECOVERED:
            return "Task %s recovered (%s)" % (self.task.name, self.report.result)
        return _HEADLINES.get(self.report.result, "Task %(task)s ended") % {"task": self.task.name}

    def link(self) -> str:
        """Return the URL of the task's admin page (with ``NOTIFY_SITE_URL`` in front, if set)."""
        return _site_url("admin:taskmanager_task_change", self.task.pk)

    def log_link(self) -> str:
        """Return the URL of the report's log page (with ``NOTIFY_SITE_URL`` in front, if set)."""
        return _site_url("admin:taskmanager_report_log", self.report.pk)

    def tail(self) -> list[str]:
        rows = self.report.log_lines.order_by("-seq").values_list("text", flat=True)[:TAIL_LINES]
        return list(reversed(rows))

    def _when(self, value) -> str:
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"

    def text(self) -> str:
        """Return the plain-text body (e-mail, and Slack after escaping)."""
        if self.report is None:
            lines = [
                self.headline + ".",
                "",
                "Task:      %s" % self.task.name,
                "Command:   %s" % self.task.command.name,
                "Status:    %s" % self.task.status,
                "Due:       %s" % self._when(self.due),
                "Node:      %s" % (self.task.spooler_node or "-"),
            ]
            link = self.link()
            if link:
                lines += ["", "Task:      %s" % link]
            return "\n".join(lines) + "\n"
        report = self.report
        duration = report.duration
        lines = [
            self.headline + ".",
            "",
            "Task:      %s" % self.task.name,
            "Command:   %s" % (report.command_line or self.task.command.name),
            "Result:    %s (%s)" % (report.result, report.end_reason or "-"),
            "Started:   %s" % self._when(report.invocation_datetime),
            "Duration:  %s" % (("%.1f s" % duration.total_seconds()) if duration is not None else "-"),
            "Host:      %s" % (report.host or "-"),
            "Errors:    %d, warnings: %d" % (report.errors, report.warnings),
        ]
        link = self.link()
        if link:
            lines += ["", "Task:      %s" % link, "Full log:  %s" % self.log_link()]
        tail = self.tail()
        if tail and self.kind == FAILURE:
            lines += ["", "Last lines of the log:", *("    " + line for line in tail)]
        return "\n".join(lines) + "\n"

    def payload(self) -> dict:
        """Return the webhook's JSON object.

        Shape::

            {"event": "failure" | "recovered", "version": "0.1.0", "text": "<headline>",
             "task": {"id": 3, "name": "...", "command": "...", "url": "..."},
             "report": {"id": 17, "result": "FAILED", "end_reason": "exit code 1",
                        "end_kind": "exit code", "exit_code": 1,
                        "trigger": "schedule", "started": "<ISO 8601, UTC>",
                        "finished": "<ISO 8601, UTC>", "duration_seconds": 1.5,
                        "host": "...", "lines": 12, "errors": 1, "warnings": 0,
                        "log_url": "...", "tail": ["...", ...]}}

        An ``"overdue"`` notice has ``"report": null`` and
        ``"overdue": {"due": "<ISO 8601, UTC>", "status": "SPOOLED", "node": "..."}``;
        the ``"recovered"`` notice that follows it has ``"cause": "overdue"``.
        ``end_kind`` is how the run ended (``EndKind``: "completed", "stopped",
        "timed out", "interrupted", "crashed", "exit code", "fenced", "not run"),
        ``exit_code`` the command's exit code for "exit code" (else null).
        """
        task = {
            "id": self.task.pk,
            "name": self.task.name,
            "command": self.task.command.name,
            "url": self.link(),
        }
        if self.report is None:
            return {
                "event": self.kind,
                "version": __version__,
                "text": self.headline,
                "task": task,
                "report": None,
                "overdue": {
                    "due": self.due.isoformat() if self.due else None,
                    "status": self.task.status,
                    "node": self.task.spooler_node,
                },
            }
        report = self.report
        duration = report.duration
        extra = {"cause": self.cause} if self.cause else {}
        return {
            "event": self.kind,
            "version": __version__,
            "text": self.headline,
            **extra,
            "task": task,
            "report": {
                "id": report.pk,
                "result": report.result,
                "end_reason": report.end_reason,
                "end_kind": report.end_kind,
                "exit_code": report.exit_code,
                "trigger": report.trigger,
                "started": report.invocation_datetime.isoformat() if report.invocation_datetime else None,
                "finished": report.finished_datetime.isoformat() if report.finished_datetime else None,
                "duration_seconds": duration.total_seconds() if duration is not None else None,
                "host": report.host,
                "lines": report.lines,
                "errors": report.errors,
                "warnings": report.warnings,
                "log_url": self.log_link(),
                "tail": self.tail() if self.kind == FAILURE else [],
            },
        }


def decide(task: Task, report: Report) -> Notice | None:
    """Return the notice due for a finished run, or None; update ``Task.failure_notified``.

    Both changes of ``failure_notified`` are conditional UPDATEs, so two
    processes finishing runs of the same task cannot both send a notice.
    """
    if report.result in set(app_settings.NOTIFY_ON):
        if Report.objects.filter(pk=report.pk, stop_requested_at__isnull=False).exists():
            logger.info("Run %s of task %s was stopped by a user: no failure notice.", report.pk, task.name)
            return None
        if not Task.objects.filter(pk=task.pk, notify=True).update(failure_notified=True):
            logger.info(
                "Notifications are off for task %s: no failure notice for run %s.", task.name, report.pk
            )
            return None
        return Notice(FAILURE, task, report)
    # Most runs end with no failure notice pending: a read tells, without
    # taking a write lock. Else one conditional UPDATE clears the flag, and
    # only the process that cleared it looks at "notify" and sends.
    if not Task.objects.filter(pk=task.pk, failure_notified=True).exists():
        return None
    cleared = Task.objects.filter(pk=task.pk, failure_notified=True).update(failure_notified=False)
    if cleared and app_settings.NOTIFY_RECOVERED and Task.objects.filter(pk=task.pk, notify=True).exists():
        return Notice(RECOVERED, task, report)
    return None


def notify_run_end(task: Task, report: Report) -> list[str]:
    """Send the notice due for a finished run, if any; return the channels that sent it.

    ``report`` must be saved with its result. Never raises: every failure
    is logged (see the module docstring). With no channel configured
    (:func:`channels_configured`) nothing could be sent: no query at all,
    and ``Task.failure_notified`` stays as it is.
    """
    if not channels_configured():
        return []
    try:
        sent = overdue_recovered(task, report)
        notice = decide(task, report)
        if notice is None:
            return sent
        # A fresh copy: the runner's object does not carry the final counters.
        notice.report = Report.objects.get(pk=report.pk)
        return sent + send(notice)
    except Exception:  # noqa: BLE001 - a notice must never change the run's outcome
        logger.exception("Could not notify about run %s of task %s", report.pk, task.pk)
        return []


def overdue_recovered(task: Task, report: Report) -> list[str]:
    """After an "overdue" notice, the task ran again: clear the mark, send one "recovered" notice.

    One conditional UPDATE clears ``Task.overdue_notified_at``: only the
    process that cleared it sends. A run that leaves the task waiting on the
    missed slot (a "run now" of a task whose chain is still stuck) clears
    nothing. Return the channels that sent it.
    """
    marked = Task.objects.filter(pk=task.pk, overdue_notified_at__isnull=False)
    if not marked.exists():
        return []
    still_stuck = Q(status__in=Task.PENDING, next_datetime__lte=F("overdue_notified_at"))
    if not marked.exclude(still_stuck).update(overdue_notified_at=None):
        return []
    if not Task.objects.filter(pk=task.pk, notify=True).exists():
        return []
    return send(Notice(RECOVERED, task, Report.objects.get(pk=report.pk), cause=OVERDUE))


def send_overdue(task: Task) -> list[str]:
    """Send the "overdue" notice of ``task`` (its ``next_datetime`` missed); return the channels."""
    return send(Notice(OVERDUE, task, None, due=task.next_datetime))


def send(notice: Notice) -> list[str]:
    """Send ``notice`` on every configured channel; return the names of those that sent it."""
    sent = []
    for name, channel in CHANNELS.items():
        try:
            if channel(notice):
                sent.append(name)
        except Exception as exc:  # noqa: BLE001 - logged; the other channels still send
            logger.error(
                "The %s notice of run %s of task %s could not be sent by %s: %s: %s",
                notice.kind,
                notice.report.pk if notice.report else "-",
                notice.task.name,
                name,
                type(exc).__name__,
                exc,
                exc_info=True,
            )
    if sent:
        logger.info(
            "Sent the %s notice of run %s of task %s by %s.",
            notice.kind,
            notice.report.pk if notice.report else "-",
            notice.task.name,
            ", ".join(sent),
        )
    return sent


# -- channels: each returns whether it sent (False when not configured) ---------------


def channels_configured() -> bool:
    """Return whether any channel would send (settings only, no query): e-mail recipients, Slack, webhook."""
    return bool(
        email_recipients()
        or (app_settings.NOTIFY_SLACK_TOKEN and app_settings.NOTIFY_SLACK_CHANNEL)
        or app_settings.NOTIFY_WEBHOOK_URL
    )


def email_recipients() -> list[str]:
    """Return ``NOTIFY_EMAIL_RECIPIENTS``, or the addresses of ``settings.ADMINS`` when it is None."""
    configured = app_settings.NOTIFY_EMAIL_RECIPIENTS
    if configured is not None:
        return list(configured)
    # ADMINS holds (name, address) pairs up to Django 5.2, plain addresses from 6.0.
    return [entry[1] if isinstance(entry, (list, tuple)) else entry for entry in settings.ADMINS]


def send_email(notice: Notice) -> bool:
    # Deferred: Django's mail machinery is loaded only when a notice is mailed.
    from django.core.mail import EmailMessage, get_connection

    recipients = email_recipients()
    if not recipients:
        return False
    options = {}
    if getattr(settings, "EMAIL_TIMEOUT", None) is None:
        # Django's SMTP backend waits for ever by default; a notice must not.
        options["timeout"] = app_settings.NOTIFY_TIMEOUT
    # One line: a task name may hold line breaks, which Django refuses in a
    # header (BadHeaderError), and then the notice would never go out.
    subject = " ".join(("%s%s" % (settings.EMAIL_SUBJECT_PREFIX, notice.headline)).split())
    message = EmailMessage(
        subject=subject,
        body=notice.text(),
        from_email=app_settings.NOTIFY_EMAIL_FROM or settings.SERVER_EMAIL,
        to=recipients,
        connection=get_connection(fail_silently=False, **options),
    )
    message.send()
    return True


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as markup (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def send_slack(notice: Notice) -> bool:
    token, channel = app_settings.NOTIFY_SLACK_TOKEN, app_settings.NOTIFY_SLACK_CHANNEL
    if not (token and channel):
        return False
    # Deferred: slack_sdk is an optional dependency (the "slack" extra).
    from slack_sdk import WebClient

    base_url = app_settings.NOTIFY_SLACK_BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"
    client = WebClient(token=token, base_url=base_url, timeout=max(1, math.ceil(app_settings.NOTIFY_TIMEOUT)))
    client.chat_postMessage(
        channel=channel,
        text=_slack_escape(notice.headline),
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "*%s*" % _slack_escape(notice.headline)}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "```%s```" % _slack_escape(notice.text())},
            },
        ],
        unfurl_links=False,
    )
    return True


def send_webhook(notice: Notice) -> bool:
    url = app_settings.NOTIFY_WEBHOOK_URL
    if not url:
        return False
    request = urllib.request.Request(
        url,
        data=json.dumps(notice.payload()).encode("utf-8"),
        headers={
            "Content-Type": "application/json",
            "User-Agent": "django-spooler-taskmanager/%s" % __version__,
        },
        method="POST",
    )
    # urlopen raises HTTPError for a 4xx/5xx answer: logged by send().
    with urllib.request.urlopen(request, timeout=app_settings.NOTIFY_TIMEOUT) as response:
        response.read(65536)
    return True


#: Channel name -> sender, in sending order.
CHANNELS = {"email": send_email, "slack": send_slack, "webhook": send_webhook}

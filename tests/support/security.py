"""Helpers of the security tests (tests/test_security*.py): users with given rights, the admin's
forms and buttons as they post them, spool entries and the checks of a refused run."""

import html
import re

from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.core.management import get_commands
from django.utils import timezone

from taskmanager import spoolfiles
from taskmanager.models import Command, LogLine, Report, Task, new_token

from .adminclient import PASSWORD, AdminClient, client_for
from .waits import running_report, wait_for  # noqa: F401 - running_report: re-exported

TASKS = "/admin/taskmanager/task/"
COMMANDS = "/admin/taskmanager/command/"
REPORTS = "/admin/taskmanager/report/"
#: The third-party app of tests/fake_site.
FAKEEXT = "tm_fakeext"
#: What a run refused at the claim logs first.
REFUSED = "Refused, nothing was run: "


# -- helpers -----------------------------------------------------------------------


def core_commands() -> set[str]:
    """The commands of the installed Django (django.core and the django.contrib apps)."""
    found = {
        name for name, app in get_commands().items() if app == "django.core" or app.startswith("django.")
    }
    # The enumeration really sees Django's commands (not, say, an empty dict).
    assert {"shell", "dumpdata", "diffsettings", "startapp", "check"} <= found
    return found


def fakeext_commands() -> set[str]:
    return {name for name, app in get_commands().items() if app == FAKEEXT}


def make_staff(username, *codenames, groups=()):
    """A staff user with exactly these taskmanager permissions (and these groups)."""
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="taskmanager", codename__in=codenames)
    )
    assert user.user_permissions.count() == len(codenames)
    user.groups.set(groups)
    return user


def login(server, username) -> AdminClient:
    return client_for(server.url, username)


def shown_messages(resp) -> str:
    """The admin's messages on the page (success, warning...), as plain text."""
    items = re.findall(r'<li class="(?:success|warning|error|info)">(.*?)</li>', resp.text, re.S)
    return " | ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).strip() for item in items)


def form_errors(resp) -> str:
    return html.unescape(" ".join(re.findall(r'<ul class="errorlist[^>]*>(.*?)</ul>', resp.text, re.S)))


def offered_commands(client) -> set[int]:
    """The commands the task add form offers to this client's user (pks)."""
    page = client.get(TASKS + "add/")
    assert page.status == 200, page.status
    select = re.search(r'<select name="command"[^>]*>(.*?)</select>', page.text, re.S)
    return {int(pk) for pk in re.findall(r'<option value="(\d+)"', select.group(1))}


def add_form(client, name, command, arguments="", **fields):
    """Post the task add form; return the response (the task may or may not exist)."""
    return client.post(
        TASKS + "add/",
        {
            "name": name,
            "command": command.pk,
            "arguments": arguments,
            "note": "",
            "notify": "on",
            "reports-TOTAL_FORMS": "0",
            "reports-INITIAL_FORMS": "0",
            "_save": "Save",
            **fields,
        },
    )


def change_form(client, task, **overrides):
    """Post the task's change form as the admin shows it, with ``overrides``."""
    when = timezone.localtime(task.scheduling) if task.scheduling else None
    data = {
        "name": task.name,
        "command": task.command_id,
        "arguments": task.arguments,
        "category": task.category_id or "",
        "note": task.note,
        "timeout": task.timeout or "",
        "scheduling_0": when.strftime("%Y-%m-%d") if when else "",
        "scheduling_1": when.strftime("%H:%M:%S") if when else "",
        "repetition_period": task.repetition_period,
        "repetition_rate": task.repetition_rate or "",
        "reports-TOTAL_FORMS": "0",
        "reports-INITIAL_FORMS": "0",
        "_save": "Save",
    }
    if task.notify:
        data["notify"] = "on"
    data.update(overrides)
    return client.post(TASKS + "%d/change/" % task.pk, {k: v for k, v in data.items() if v is not None})


def press(client, task, button, **data):
    return client.post(TASKS + "%d/%s/" % (task.pk, button), data)


def bulk(client, action, *tasks):
    return client.post(TASKS, {"action": action, "_selected_action": [t.pk for t in tasks], "index": "0"})


def spool_entries(server) -> set[str]:
    return {p.name for p in server.spool_dir.glob(spoolfiles.PREFIX + "*")}


def spooled_for(server, task, before: set[str]) -> list[dict]:
    """Entries for ``task`` written to the spool directory since ``before`` was listed."""
    found = []
    for name in spool_entries(server) - before:
        try:
            entry = spoolfiles.read(str(server.spool_dir / name))
        except (OSError, spoolfiles.SpoolFileError):
            continue  # consumed meanwhile: the task's state tells
        if entry.get("task") == str(task.pk):
            found.append(entry)
    return found


def assert_nothing_ran(server, task, before: set[str], reports=0):
    """The task is IDLE with no pending run, no spool entry and no new report."""
    task = Task.objects.get(pk=task.pk)
    assert (task.status, task.run_token, task.run_now_token, task.next_datetime) == ("IDLE", "", "", None)
    assert spooled_for(server, task, before) == []
    assert Report.objects.filter(task=task).count() == reports


def finished_report(task, after=0, timeout=60):
    """The first finished report of ``task`` with a pk above ``after``."""
    return wait_for(
        lambda: Report.objects.filter(task=task, pk__gt=after, finished_datetime__isnull=False).first(),
        timeout=timeout,
        message="a finished report of %s" % task.name,
    )


def log_of(report) -> list[str]:
    return list(report.log_lines.order_by("seq").values_list("text", flat=True))


def force_run(server, task, user):
    """Force a run past the buttons: the task's state and a spool entry written as the app writes them.

    What someone with the database or the spool directory (or a row that
    predates the rules) could do; only the spooler's claim stands in the way.
    """
    token = new_token()
    last = Report.objects.filter(task=task).order_by("-pk").values_list("pk", flat=True).first() or 0
    Task.objects.filter(pk=task.pk).update(
        status=Task.Status.SPOOLED, run_token=token, next_datetime=None, started_by=user
    )
    spoolfiles.write(str(server.spool_dir), spoolfiles.make_entry(task.pk, token, Report.Trigger.START))
    return finished_report(task, after=last)


def fire_pending_run(server, task):
    """Make the task's pending scheduled run come due now (same token), as the spooler would at its slot.

    Only the time changes: the run is the one the task had queued, in the
    name of whoever the task says started it. Returns its finished report.
    """
    from datetime import timedelta

    task = Task.objects.get(pk=task.pk)
    assert task.run_token and task.status in ("SCHEDULED", "SPOOLED"), (task.status, task.run_token)
    last = Report.objects.filter(task=task).order_by("-pk").values_list("pk", flat=True).first() or 0
    Task.objects.filter(pk=task.pk).update(next_datetime=timezone.now() - timedelta(seconds=1))
    spoolfiles.write(
        str(server.spool_dir), spoolfiles.make_entry(task.pk, task.run_token, Report.Trigger.SCHEDULE)
    )
    return finished_report(task, after=last)


def assert_refused_at_claim(report, reason_part):
    from taskmanager import arguments

    task = Task.objects.select_related("command").get(pk=report.task_id)
    # The report shows what was refused; no process was started for it.
    refused = arguments.command_line(task.command.name, arguments.parse_arguments(task.arguments))
    assert (report.result, report.end_reason, report.command_line, report.pid) == (
        "FAILED",
        "not allowed",
        refused,
        None,
    )
    lines = log_of(report)
    assert lines and lines[0].startswith(REFUSED) and reason_part in lines[0], lines
    assert len(lines) == 1, lines
    task = Task.objects.get(pk=report.task_id)
    assert (task.status, task.run_token) == ("IDLE", "")


def secrets() -> list[str]:
    """The secrets the attack went for: SECRET_KEY, the live session keys, the password hashes."""
    keys = list(Session.objects.values_list("session_key", flat=True))
    hashes = [h for h in User.objects.values_list("password", flat=True) if not h.startswith("!")]
    assert keys and hashes, "log in before looking for secrets"
    return [settings.SECRET_KEY, *keys, *hashes]


def assert_no_secret_logged(server):
    stored = "\n".join(LogLine.objects.values_list("text", flat=True))
    stored += "\n".join("%s %s" % row for row in Report.objects.values_list("command_line", "end_reason"))
    server_log = server.log()
    for secret in secrets():
        assert secret not in stored, secret
        assert secret not in server_log, secret


def active_commands() -> set[tuple[str, str]]:
    return set(Command.objects.filter(active=True).values_list("app_name", "name"))

"""Adversarial tests of issue 16's new surfaces (Run now with other arguments, Save as new, the live cells).

Each test is a finding of the adversarial review, written failing first; its
docstring says what was found, and the test now guards the fix. They go
through the real uWSGI server (helpers in tests/support/).
"""

import html

import pytest

from taskmanager.models import AuditEntry, Command, Report

from .support.admin import add_task, edit_task, press, start_running
from .support.security import login, make_staff, shown_messages, spool_entries, spooled_for
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = "/admin/taskmanager/task/"
OWN = "--lines 1, --word own"


def run_with(client, task, text):
    """Post Run now with other arguments as its page does; return the answer."""
    return client.post(TASKS + "%d/run-with-arguments/" % task.pk, {"arguments": text, "version": task.version})


def test_one_off_arguments_stay_out_of_the_audit_for_those_who_may_not_read_them(server, admin_http, commands):
    """The run-now audit entry kept the one-off arguments raw, and the task's history showed them to any viewer.

    The report redacts the one-off arguments and shows them only to those who
    may read the command's reports (docs/security.rst, "Secrets in logs",
    "Read rights"). The audit entry of the same Run now stored them as typed,
    secret included, and the task's history page lists the entry to whoever
    has ``view_task``: a viewer with no right to the command's reports read
    the run's arguments, secret and all.
    """
    task = add_task(admin_http, commands, "audit-other", "tm_ok", OWN)
    secret = "hunter2-not-for-the-audit"
    one_off = "--lines 1, --word zebra-one-off, --word https://bob:%s@example.com/x" % secret
    assert "will run now with other arguments" in shown_messages(run_with(admin_http, task, one_off))
    report = finished_report(task)
    assert report.result == "OK" and secret not in report.arguments_override

    entry = AuditEntry.objects.get(action="run now", object_id=str(task.pk))
    assert secret not in str(entry.changes), entry.changes
    assert "zebra-one-off" in entry.changes["arguments"][1]  # what the run had, redacted
    history = TASKS + "%d/history/" % task.pk
    shown = admin_http.get(history).text
    assert "zebra-one-off" in shown and secret not in shown

    # A viewer of the task who may not read its command's reports (the
    # command is for a group they are not in) sees that it ran with other
    # arguments, not which.
    Command.objects.filter(pk=task.command_id).update(run_by=Command.RunBy.GROUPS)
    make_staff("viewer", "view_task", "view_report")
    page = login(server, "viewer").get(history)
    assert page.status == 200
    assert "With other arguments" in page.text
    assert "zebra-one-off" not in page.text and secret not in page.text
    assert login(server, "viewer").get("/admin/taskmanager/report/%d/change/" % report.pk).status == 403


def test_changing_the_command_cancels_a_queued_run_with_other_arguments(server, admin_http, commands):
    """A queued one-off ran with the task's new command: arguments chosen and checked for another one.

    Run now with other arguments checks the one-off arguments against the
    task's command (its parser, its approved strings) when they are posted.
    If the task's command is changed before a spooler claims the run (all
    spoolers busy, a queue served elsewhere), the claim ran the *new*
    command with them: arguments nobody checked against its parser, chosen
    for another command, in a run the editor never saw queued. Changing the
    command now cancels the queued one-off run, and the editor is told.
    """
    # Both spooler processes busy: the next entry waits in the spool directory.
    blockers = [start_running(admin_http, commands, "blocker-%d" % i)[0] for i in range(2)]
    task = add_task(admin_http, commands, "edited-other", "tm_sleep", "--seconds 0.1")
    before = spool_entries(server)
    resp = run_with(admin_http, task, "--tick 0.05")
    assert "will run now with other arguments" in shown_messages(resp)
    assert spooled_for(server, task, before), "the one-off run waits in the spool"
    task.refresh_from_db()
    assert task.run_now_arguments == "--tick 0.05"

    resp = edit_task(admin_http, task, command=commands["tm_drip"].pk, arguments="--lines 1")
    assert "with other arguments" in shown_messages(resp) and "cancelled" in shown_messages(resp)
    task.refresh_from_db()
    assert (task.command_id, task.run_now_token, task.run_now_arguments) == (commands["tm_drip"].pk, "", None)

    for blocker in blockers:
        press(admin_http, blocker, "stop")
    for blocker in blockers:
        finished_report(blocker)
    # The cancelled entry is consumed as stale: no run of the new command with the old one-off.
    wait_for(lambda: not spooled_for(server, task, before), message="the stale entry to be consumed")
    assert not Report.objects.filter(task=task).exists()
    entry = AuditEntry.objects.filter(action="edit", object_id=str(task.pk)).latest("pk")
    assert "cancelled" in html.unescape(entry.message)

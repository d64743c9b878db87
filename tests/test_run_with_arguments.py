"""Run now with other arguments (issue 16, item 14), through the real uWSGI server.

A one-off run of a task with arguments of its own: only for whoever may
change the task's arguments (locked arguments included), checked against the
command's parser like a save, recorded on its report and in the audit, the
task's own arguments untouched; the spooler's claim checks it again.
"""

import pytest

from taskmanager import spoolfiles
from taskmanager.models import ApprovedArguments, AuditEntry, Command, Report, Task, new_token

from .support.admin import add_task, press
from .support.security import form_errors, login, make_staff, shown_messages
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = "/admin/taskmanager/task/"
OWN = "--lines 1, --word own"


def url(task) -> str:
    return TASKS + "%d/run-with-arguments/" % task.pk


def run_with(client, task, text, **data):
    """Post the form as the page does (its version, the CSRF token); return the answer."""
    return client.post(url(task), {"arguments": text, "version": task.version, **data})


def next_report(task, after: int) -> Report:
    return wait_for(
        lambda: Report.objects.filter(task=task, pk__gt=after, finished_datetime__isnull=False).first(),
        message="a finished report of %s after %s" % (task.name, after),
    )


def assert_nothing_queued(task, reports=0):
    task.refresh_from_db()
    assert (task.status, task.run_now_token, task.run_now_arguments) == ("IDLE", "", None)
    assert Report.objects.filter(task=task).count() == reports
    assert task.arguments == OWN


def test_superuser_runs_once_with_other_arguments(server, admin_http, commands):
    task = add_task(admin_http, commands, "once-other", "tm_ok", OWN)
    change = admin_http.get(TASKS + "%d/change/" % task.pk)
    assert url(task) in change.text  # the control on the task's page
    page = admin_http.get(url(task))
    assert page.status == 200
    assert 'value="%s"' % OWN in page.text and "csrfmiddlewaretoken" in page.text
    assert "--word WORD" in page.text  # the command's options, for reference

    resp = run_with(admin_http, task, "--lines 2, --word other")
    assert resp.status == 200 and resp.url.endswith(TASKS + "%d/change/" % task.pk), resp.url
    assert "will run now with other arguments" in shown_messages(resp)
    report = finished_report(task)
    assert report.trigger == Report.Trigger.RUN_NOW and report.result == "OK"
    assert report.command_line == "manage.py tm_ok --lines 2 --word other"
    assert report.arguments_override == "--lines 2, --word other"
    assert "line 2 other" in report.log_lines.values_list("text", flat=True)
    task.refresh_from_db()
    assert task.arguments == OWN and task.run_now_arguments is None and task.run_now_token == ""
    shown = admin_http.get("/admin/taskmanager/report/%d/change/" % report.pk).text
    assert "--lines 2, --word other" in shown and "one-off" in shown

    entry = AuditEntry.objects.filter(action="run now", object_id=str(task.pk)).get()
    assert entry.actor_name == "admin"
    assert entry.changes == {"arguments": [OWN, "--lines 2, --word other"]}

    # The next plain run uses the task's own arguments.
    assert "will run now." in shown_messages(press(admin_http, task, "run-now"))
    again = next_report(task, report.pk)
    assert again.command_line == "manage.py tm_ok --lines 1 --word own" and again.arguments_override is None
    assert "the task&#x27;s own" in admin_http.get("/admin/taskmanager/report/%d/change/" % again.pk).text


def test_invalid_arguments_are_a_form_error_and_nothing_is_queued(server, admin_http, commands):
    task = add_task(admin_http, commands, "bad-other", "tm_ok", OWN)
    for text, error in (
        ("--nope", "unrecognized arguments: --nope"),
        ("--lines many", "invalid int value"),
        ('--word "open', "quote"),
    ):
        resp = run_with(admin_http, task, text)
        assert resp.status == 200 and resp.url.endswith(url(task)), (text, resp.url)
        assert error in form_errors(resp), (text, form_errors(resp))
        assert 'value="%s"' % text.replace('"', "&quot;") in resp.text  # the input is kept
    assert_nothing_queued(task)
    assert not AuditEntry.objects.filter(action="run now").exists()


def test_csrf_is_required(server, admin_http, commands):
    task = add_task(admin_http, commands, "csrf-other", "tm_ok", OWN)
    resp = admin_http.post(url(task), {"arguments": "--lines 2", "version": task.version}, csrf=False)
    assert resp.status == 403
    assert_nothing_queued(task)


def test_only_who_may_change_the_arguments(server, admin_http, commands):
    task = add_task(admin_http, commands, "rights-other", "tm_ok", OWN)
    # run_task without change_task: Run now, but not with other arguments.
    make_staff("runner", "view_task", "run_task")
    runner = login(server, "runner")
    page = runner.get(TASKS + "%d/change/" % task.pk).text
    assert "/run-now/" in page and url(task) not in page
    assert runner.get(url(task)).status == 403
    assert run_with(runner, task, "--lines 2").status == 403
    assert_nothing_queued(task)
    # change_task without run_task: no run at all.
    make_staff("editor", "view_task", "change_task")
    assert login(server, "editor").get(url(task)).status == 403
    # Both, but the command is for superusers only.
    make_staff("operator", "view_task", "change_task", "run_task")
    operator = login(server, "operator")
    Command.objects.filter(pk=task.command_id).update(run_by=Command.RunBy.SUPERUSERS)
    assert operator.get(url(task)).status == 403
    assert run_with(operator, task, "--lines 2").status == 403
    assert_nothing_queued(task)
    # Within the command's run rights, they may.
    Command.objects.filter(pk=task.command_id).update(run_by=Command.RunBy.PERMISSION)
    assert url(task) in operator.get(TASKS + "%d/change/" % task.pk).text
    resp = run_with(operator, task, "--lines 2, --word op")
    assert "will run now with other arguments" in shown_messages(resp)
    report = finished_report(task)
    assert (report.user_name, report.command_line) == ("operator", "manage.py tm_ok --lines 2 --word op")


def test_locked_arguments_take_only_approved_strings(server, admin_http, commands):
    command = commands["tm_ok"]
    ApprovedArguments.objects.create(command=command, arguments=OWN)
    ApprovedArguments.objects.create(command=command, arguments="--lines 2, --word ok")
    Command.objects.filter(pk=command.pk).update(locked_arguments=True)
    task = Task.objects.create(name="locked-other", command=command, arguments=OWN)
    resp = run_with(admin_http, task, "--lines 3")
    assert "are locked" in form_errors(resp) and "--lines 2, --word ok" in form_errors(resp)
    assert_nothing_queued(task)
    # Spacing that gives the same arguments matches the approved string.
    resp = run_with(admin_http, task, "--lines 2 ,  --word  ok")
    assert "will run now with other arguments" in shown_messages(resp)
    assert finished_report(task).command_line == "manage.py tm_ok --lines 2 --word ok"


def test_a_second_run_now_while_one_is_queued(server, admin_http, commands):
    task = add_task(admin_http, commands, "queued-other", "tm_ok", OWN)
    # A queued Run now (a state, not a run: no spool entry carries this token).
    token = new_token()
    Task.objects.filter(pk=task.pk).update(run_now_token=token, run_now_arguments="--lines 5")
    resp = run_with(admin_http, task, "--lines 2")
    assert "is already queued to run now" in shown_messages(resp)
    task.refresh_from_db()
    assert (task.run_now_token, task.run_now_arguments) == (token, "--lines 5")
    # Stop cancels it, its one-off arguments with it.
    assert "its queued run is cancelled" in shown_messages(press(admin_http, task, "stop"))
    assert_nothing_queued(task)


def test_a_page_of_an_older_definition_is_refused(server, admin_http, commands):
    task = add_task(admin_http, commands, "older-other", "tm_ok", OWN)
    resp = run_with(admin_http, task, "--lines 2", version=task.version + 1)
    assert "changed what it runs" in shown_messages(resp)
    assert_nothing_queued(task)


def test_the_claim_checks_the_right_to_other_arguments(server, commands):
    """A queued run with other arguments whose author lost change_task meanwhile is refused at the claim."""
    task = Task.objects.create(name="claim-other", command=commands["tm_ok"], arguments=OWN)
    runner = make_staff("lost-change", "view_task", "run_task")
    token = new_token()
    Task.objects.filter(pk=task.pk).update(
        run_now_token=token, run_now_arguments="--lines 2", run_now_by=runner, run_now_by_name="lost-change"
    )
    spoolfiles.write(str(server.spool_dir), spoolfiles.make_entry(task.pk, token, Report.Trigger.RUN_NOW))
    report = finished_report(task)
    assert report.result == "FAILED" and report.arguments_override == "--lines 2"
    assert any("may not run one with other arguments" in t for t in report.log_lines.values_list("text", flat=True))
    task.refresh_from_db()
    assert (task.arguments, task.run_now_arguments) == (OWN, None)


def test_other_arguments_are_redacted_on_the_report(server, admin_http, commands):
    task = add_task(admin_http, commands, "secret-other", "tm_ok", OWN)
    secret = "hunter2-not-for-logs"
    run_with(admin_http, task, "--lines 1, --word https://bob:%s@example.com/x" % secret)
    report = finished_report(task)
    assert secret not in report.command_line and secret not in report.arguments_override
    assert "[redacted]" in report.arguments_override
    assert not [t for t in report.log_lines.values_list("text", flat=True) if secret in t]

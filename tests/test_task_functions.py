"""A Task that runs a ``@task`` function instead of a management command (issue 19), through real uWSGI.

The functions are tests/testapp/tasks.py's. Collected inactive, under the
commands' security model (activation, run rights and locked arguments are a
superuser's), JSON arguments checked against the signature at save (after
the rights check), and run on the commands' run path: report, log with
levels, return value, failure, Stop, time-out, schedule.

Needs the django.tasks API (Django 6.0+, or the django-tasks backport on
Django 5.2, which the test extra installs): skipped without it, saying so.
"""

import html
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from taskmanager.models import AuditEntry, Command, LogLine, Task

from .support.admin import (
    TASK_URL,
    add_task,
    change_page,
    edit_task,
    page_fields,
    press,
    run_to_end,
    task_form,
)
from .support.adminclient import client_for, form_errors
from .support.functions import COMMAND_URL, EXPLODE, GREET, NAP, WHICH_RUN, activate, skip_without_api
from .support.scheduling import schedule_fields, whole_seconds_ahead
from .support.security import change_form
from .support.waits import finished_report, finished_reports, running_report, wait_for

skip_without_api()

pytestmark = pytest.mark.db_sensitive


def log_lines(report) -> dict:
    """``{text: level}`` of the report's log."""
    return dict(report.log_lines.values_list("text", "level"))


def save_command_page(client, command, **changes):
    """Post the command's admin page as a browser would, with ``changes``; return the answer."""
    page = client.get(COMMAND_URL % command.pk)
    assert page.status == 200, page.text[:1000]
    data = {**page_fields(page.text, "command_form"), **changes, "_save": "Save"}
    return client.post(COMMAND_URL % command.pk, {k: v for k, v in data.items() if v is not None})


def test_collect_commands_collects_the_apps_task_functions_inactive(transactional_db):
    out = StringIO()
    call_command("collect_commands", "--excludecore", "-v2", stdout=out)
    functions = {c.name: c for c in Command.objects.filter(kind=Command.Kind.FUNCTION)}
    # The tasks module's @task functions; not its plain function, nor the functions of other modules.
    assert set(functions) == {GREET, EXPLODE, NAP, WHICH_RUN}
    assert all(c.app_name == "tests.testapp" and not c.active for c in functions.values())
    assert not any(c.locked_arguments for c in functions.values())
    assert "Added %s (tests.testapp), inactive: A @task function" % GREET in out.getvalue()
    assert str(functions[GREET]) == "%s() (tests.testapp)" % GREET
    # Commands keep their kind and rules: the project's own are active.
    assert Command.objects.get(name="tm_ok").kind == Command.Kind.COMMAND
    assert Command.objects.get(name="tm_ok").active
    # Collected again: nothing is activated; a function gone from the code is deactivated (audited).
    gone = Command.objects.create(
        app_name="tests.testapp", name="tests.testapp.tasks.gone", kind=Command.Kind.FUNCTION, active=True
    )
    call_command("collect_commands", "--excludecore", stdout=StringIO())
    assert not Command.objects.filter(kind=Command.Kind.FUNCTION, active=True).exists()
    entry = AuditEntry.objects.get(object_type="command", object_id=str(gone.pk))
    assert (entry.action, entry.actor_name) == ("deactivate", "collect_commands")
    assert entry.message == "Deactivated by collection: the function no longer exists."


def test_only_a_superuser_activates_a_function_or_sets_its_rights(server, commands, staff, superuser):
    function = commands[GREET]
    staff("view_command", "change_command", "run_task", "add_task", "change_task", "view_task")
    client = client_for(server.url, "staff")
    # The fields are read-only for them: what they post is ignored, an approved call too.
    save_command_page(
        client,
        function,
        active="on",
        run_by="superusers",
        locked_arguments="on",
        **{
            "approved_arguments-TOTAL_FORMS": "1",
            "approved_arguments-INITIAL_FORMS": "0",
            "approved_arguments-0-arguments": '{"args": ["x"]}',
        },
    )
    function.refresh_from_db()
    assert (function.active, function.run_by, function.locked_arguments) == (False, "permission", False)
    assert not function.approved_arguments.exists()
    assert not AuditEntry.objects.filter(object_type="command", object_id=str(function.pk)).exists()
    # Their add form does not offer it, and a post of it is refused.
    assert 'value="%d"' % function.pk not in client.get(TASK_URL + "add/").text
    answer = client.post(TASK_URL + "add/", task_form(commands, "mine", GREET, '{"args": ["x"]}'))
    assert "Select a valid choice" in form_errors(answer)

    admin = client_for(server.url, "admin")
    # Its page shows its signature, its docstring and the form of its tasks' arguments.
    page = html.unescape(admin.get(COMMAND_URL % function.pk).text)
    assert "%s(name, times=1, *, loud=False)" % GREET in page
    assert "Log at INFO and WARNING" in page and '{"args": [...], "kwargs": {...}}' in page
    answer = save_command_page(admin, function, active="on")
    assert "/change/" not in answer.url, form_errors(answer)
    function.refresh_from_db()
    assert function.active
    entry = AuditEntry.objects.get(object_type="command", object_id=str(function.pk), action="activate")
    assert entry.actor_name == "admin" and entry.changes == {"active": [False, True]}


def test_the_command_field_offers_functions_apart_from_commands(server, admin_http, commands):
    activate(GREET)
    page = admin_http.get(TASK_URL + "add/")
    select = re.search(r'<select name="command"[^>]*>(.*?)</select>', page.text, re.S).group(1)
    groups = dict(re.findall(r'<optgroup label="([^"]+)">(.*?)</optgroup>', select, re.S))
    assert set(groups) == {"Management commands", "Task functions"}
    assert 'value="%d"' % commands[GREET].pk in groups["Task functions"]
    assert 'value="%d"' % commands["tm_ok"].pk in groups["Management commands"]
    # Inactive functions are not offered.
    assert 'value="%d"' % commands[NAP].pk not in select


def test_arguments_are_json_checked_against_the_signature_at_save(server, admin_http, commands):
    activate(GREET)
    refused = {
        "ada": "The arguments of a function are JSON",
        '["ada"]': "one JSON object",
        '{"arg": ["ada"]}': 'Unknown key(s) "arg"',
        '{"args": "ada"}': '"args" must be a JSON list',
        '{"args": ["ada", 1, 2]}': "too many positional arguments",
        '{"kwargs": {"nom": "ada"}}': "missing a required argument: 'name'",
        '{"args": ["ada"], "kwargs": {"shout": true}}': "unexpected keyword argument 'shout'",
    }
    for number, (text, message) in enumerate(refused.items()):
        answer = admin_http.post(TASK_URL + "add/", task_form(commands, "bad %d" % number, GREET, text))
        errors = form_errors(answer)
        assert message in errors, (text, errors)
        assert "tests.testapp.tasks.greet" in errors or "JSON" in errors or "key" in errors
    assert not Task.objects.filter(name__startswith="bad").exists()
    task = add_task(admin_http, commands, "good", GREET, '{"args": ["ada"], "kwargs": {"loud": true}}')
    assert task.arguments == '{"args": ["ada"], "kwargs": {"loud": true}}'


def test_the_rights_are_checked_before_the_signature(server, commands, staff):
    activate(GREET, run_by=Command.RunBy.SUPERUSERS)
    staff("run_task", "add_task", "change_task", "view_task")
    client = client_for(server.url, "staff")
    answer = client.post(TASK_URL + "add/", task_form(commands, "sneaky", GREET, '{"args": [1, 2, 3]}'))
    errors = form_errors(answer)
    assert "Only superusers may run tasks of the command" in errors or "Select a valid choice" in errors
    assert "do not fit" not in errors
    assert not Task.objects.filter(name="sneaky").exists()
    # A task of it made by a superuser: they may not change its arguments (nor load the function).
    task = Task.objects.create(name="theirs", command=commands[GREET], arguments='{"args": ["ada"]}')
    change_form(client, task, arguments='{"args": [1, 2, 3]}')
    task.refresh_from_db()
    assert task.arguments == '{"args": ["ada"]}'


def test_locked_arguments_take_the_approved_calls_only(server, admin_http, commands):
    activate(GREET, locked_arguments=True)
    commands[GREET].approved_arguments.create(arguments='{"kwargs": {"name": "ada"}}')
    refused = admin_http.post(TASK_URL + "add/", task_form(commands, "other", GREET, '{"args": ["bob"]}'))
    assert "The arguments of %s are locked" % GREET in form_errors(refused)
    # The same call, spaced otherwise: approved.
    add_task(admin_http, commands, "approved", GREET, '{ "kwargs" : {"name":"ada"} }')


def test_start_runs_the_function_with_its_log_levels_and_return_value(server, admin_http, commands):
    activate(GREET)
    task, report = run_to_end(
        admin_http, commands, "greeting", GREET, '{"args": ["ada"], "kwargs": {"times": 2}}'
    )
    lines = log_lines(report)
    assert lines["greeting ada"] == LogLine.Level.INFO, lines
    assert lines["ada is greeted 2 time(s)"] == LogLine.Level.WARNING
    assert lines["hello ada"] == LogLine.Level.INFO
    assert lines["Returned: {'greeted': 'ada', 'times': 2}"] == LogLine.Level.INFO
    assert (report.result, report.end_kind, report.warnings) == ("WARNINGS", "completed", 1)
    assert report.command_line == '%s("ada", times=2)' % GREET
    assert report.supervisor_pid in server.spooler_pids() and report.pid != report.supervisor_pid
    # The task page shows the call; the list tells it is a function.
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk)
    assert "%s(&quot;ada&quot;, times=2)" % GREET in page.text
    assert "The call the task makes" in page.text
    assert "%s()" % GREET in admin_http.get(TASK_URL).text


def test_a_function_that_takes_a_context_gets_one_describing_the_run(server, admin_http, commands):
    activate(WHICH_RUN)
    _task, report = run_to_end(admin_http, commands, "context", WHICH_RUN, '{"args": ["mine"]}')
    lines = log_lines(report)
    assert "attempt 1 of taskmanager-report-%d" % report.pk in lines, lines
    assert "Returned: 'mine'" in lines
    assert report.result == "OK"


def test_a_function_that_raises_fails_the_run(server, admin_http, commands):
    activate(EXPLODE)
    _task, report = run_to_end(admin_http, commands, "exploding", EXPLODE, '{"args": ["boom"]}')
    assert (report.result, report.end_kind) == ("FAILED", "crashed")
    assert report.end_reason == "exception: ValueError"
    errors = [text for text, level in log_lines(report).items() if level == LogLine.Level.ERROR]
    (traceback,) = errors
    assert traceback.startswith("Traceback") and traceback.endswith("ValueError: boom")
    assert "def explode" not in traceback and "raise ValueError(message)" in traceback
    assert not any(text.startswith("Returned") for text in log_lines(report))


def test_stop_and_the_time_out_end_a_function_run(server, admin_http, commands):
    activate(NAP)
    task = add_task(admin_http, commands, "napping", NAP, '{"args": [600]}')
    press(admin_http, task, "start")
    wait_for(lambda: "napping" in log_lines(running_report(task)), message="the function to run")
    press(admin_http, task, "stop")
    report = finished_report(task)
    assert (report.result, report.end_kind) == ("FAILED", "stopped")

    short = add_task(admin_http, commands, "short nap", NAP, '{"args": [600]}', timeout="1")
    press(admin_http, short, "start")
    report = finished_report(short)
    assert (report.result, report.end_kind) == ("FAILED", "timed out")


def test_a_scheduled_function_task_runs_on_its_schedule(server, admin_http, commands):
    activate(GREET)
    start = whole_seconds_ahead(1)
    task = add_task(
        admin_http,
        commands,
        "every minute",
        GREET,
        '{"args": ["bob"]}',
        **schedule_fields(start, "minute", 1),
    )
    press(admin_http, task, "start")
    (report,) = finished_reports(task)
    assert report.invocation_datetime >= start
    assert report.trigger == "start"
    assert "Returned: {'greeted': 'bob', 'times': 1}" in log_lines(report)
    task.refresh_from_db()
    assert task.status == Task.Status.SPOOLED
    assert task.next_datetime == start + timedelta(minutes=1)
    press(admin_http, task, "stop")


def test_editing_a_function_task_checks_the_new_arguments(server, admin_http, commands):
    activate(GREET)
    task = add_task(admin_http, commands, "edited", GREET, '{"args": ["ada"]}')
    edit_task(admin_http, task, arguments='{"args": ["ada", 3]}')
    data = change_page(admin_http, task)
    answer = admin_http.post(TASK_URL + "%d/change/" % task.pk, {**data, "arguments": "{", "_save": "Save"})
    assert "The arguments of a function are JSON" in form_errors(answer)
    task.refresh_from_db()
    assert task.arguments == '{"args": ["ada", 3]}'


def test_run_now_with_other_arguments_checks_them_against_the_signature(server, admin_http, commands):
    activate(GREET)
    task = add_task(admin_http, commands, "other call", GREET, '{"args": ["ada"]}')
    url = TASK_URL + "%d/run-with-arguments/" % task.pk
    page = html.unescape(admin_http.get(url).text)
    assert '%s("ada")' % GREET in page and "%s(name, times=1, *, loud=False)" % GREET in page
    refused = admin_http.post(url, {"arguments": '{"args": []}', "version": task.version})
    assert "missing a required argument: 'name'" in form_errors(refused)
    assert not task.reports.exists()
    admin_http.post(
        url, {"arguments": '{"args": ["bob"], "kwargs": {"loud": true}}', "version": task.version}
    )
    report = finished_report(task)
    assert report.trigger == "run now" and report.command_line == '%s("bob", loud=true)' % GREET
    assert "HELLO bob" in log_lines(report)
    task.refresh_from_db()
    assert task.arguments == '{"args": ["ada"]}'

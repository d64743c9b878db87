"""Adversarial tests of the @task functions a Task runs (issue 19), through real uWSGI.

The first tests are findings of the adversarial review of function tasks,
written failing first: their docstrings say the weakness as found, and the
tests now guard the fixes. The tests marked "Held" are attacks that did not
get through, kept as guards: a runner (``run_task``, ``change_task``) or a
view-only reader against a function whose rights are superusers', a secret
in a function's return value or exception, another spelling of a locked
call. Helpers in tests/support/ (functions.py, admin.py, security.py).
"""

import html

import pytest

from taskmanager.models import Command, Task

from .support.admin import (
    TASK_URL,
    add_task,
    bulk_action,
    change_page,
    page_fields,
    press,
    run_to_end,
    task_form,
)
from .support.adminclient import client_for
from .support.functions import COMMAND_URL, EXPLODE, GREET, NAP, activate, skip_without_api
from .support.reading import REPORTS, download, read_report, report_urls, task_status
from .support.security import finished_report, form_errors, log_of, shown_messages

pytestmark = pytest.mark.db_sensitive
skip_without_api()


def nested(depth: int) -> str:
    """A JSON list ``depth`` lists deep: a few kilobytes, far under the size limit of arguments."""
    return "[" * depth + "]" * depth


def test_deeply_nested_json_arguments_are_a_form_error_not_a_crash(server, admin_http, commands):
    """JSON nested a few thousand levels deep (6 kB of brackets) crashed the save with a 500.

    ``json.loads`` raises RecursionError, not the ValueError parse_call
    catches: the add form, Run now with other arguments and the Commands
    page's approved strings (a careless superuser's paste) answered 500.
    """
    activate(GREET)
    text = '{"args": [%s]}' % nested(3000)
    answer = admin_http.post(TASK_URL + "add/", task_form(commands, "deep", GREET, text))
    assert answer.status == 200, answer.text[:500]
    assert "nested" in form_errors(answer)
    assert not Task.objects.filter(name="deep").exists()
    task = add_task(admin_http, commands, "shallow", GREET, '{"args": ["ada"]}')
    url = TASK_URL + "%d/run-with-arguments/" % task.pk
    answer = admin_http.post(url, {"arguments": text, "version": task.version})
    assert answer.status == 200 and "nested" in form_errors(answer), answer.text[:500]
    assert not task.reports.exists()
    # A careless superuser pastes it as an approved string of the function: a form error too.
    url = COMMAND_URL % commands[GREET].pk
    fields = page_fields(admin_http.get(url).text, "command_form")
    fields.update({"approved_arguments-TOTAL_FORMS": "1", "approved_arguments-0-arguments": text})
    answer = admin_http.post(url, {**fields, "_save": "Save"})
    assert answer.status == 200 and "nested" in form_errors(answer), answer.text[:500]
    assert not commands[GREET].approved_arguments.exists()


def test_a_lone_surrogate_in_json_arguments_is_refused(server, admin_http, commands):
    """``"\\ud800"`` is valid JSON but no UTF-8 text: the task saved, then its page and its run broke.

    The call shown on the task's page (and stored as the report's command
    line) holds the lone surrogate, which no response and no database can
    encode.
    """
    activate(GREET)
    text = '{"args": ["\\ud800"]}'
    answer = admin_http.post(TASK_URL + "add/", task_form(commands, "surrogate", GREET, text))
    assert answer.status == 200, answer.text[:500]
    assert "surrogate" in form_errors(answer)
    assert not Task.objects.filter(name="surrogate").exists()
    # A task saved before the check (here straight in the database): its page says why, Start refuses.
    task = Task.objects.create(name="old", command=Command.objects.get(name=GREET), arguments=text)
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk)
    assert page.status == 200 and "lone surrogate" in page.text, page.text[:500]
    assert "lone surrogate" in shown_messages(press(admin_http, task, "start"))
    assert not task.reports.exists()


def test_a_secret_returned_or_raised_by_a_function_is_redacted(server, admin_http, commands, settings):
    """Held: a function's return value and exception text are log lines, redacted as a command's output."""
    activate(GREET, EXPLODE)
    secret = settings.SECRET_KEY
    _task, report = run_to_end(admin_http, commands, "leaky", GREET, '{"args": ["%s"]}' % secret)
    _task, failed = run_to_end(admin_http, commands, "blurt", EXPLODE, '{"args": ["%s"]}' % secret)
    assert "Returned: {'greeted': '[redacted]', 'times': 1}" in log_of(report), log_of(report)
    assert failed.result == "FAILED" and any("ValueError: [redacted]" in line for line in log_of(failed))
    for run in (report, failed):
        run.refresh_from_db()
        assert secret not in run.command_line and secret not in "\n".join(log_of(run))
        assert secret not in download(admin_http, run)


def test_the_import_error_of_a_function_is_shown_redacted_on_its_page(server, admin_http):
    """Found after the review: a function whose module fails to import showed the error, a URL's
    password and all, on its Commands page to whoever may view commands (a command's too)."""
    function = Command.objects.create(
        name="tests.testapp.failing_tasks.job", app_name="tests.testapp", kind=Command.Kind.FUNCTION
    )
    page = html.unescape(admin_http.get(COMMAND_URL % function.pk).text)
    assert "can no longer be loaded: RuntimeError: cannot reach postgres://app:[redacted]@db/app" in page
    assert "hunter2-import-secret" not in page


def test_a_view_only_user_reads_no_run_of_a_superusers_only_function(server, admin_http, commands, staff):
    """Held: the read rights of a function's runs are its row's (run_by), as a command's are."""
    activate(GREET, run_by=Command.RunBy.SUPERUSERS)
    task, report = run_to_end(admin_http, commands, "private", GREET, '{"args": ["hidden-name"]}')
    staff("view_task", "view_report", "view_command")
    reader = client_for(server.url, "staff")
    assert {name: r.status for name, r in read_report(reader, report).items()} == dict.fromkeys(
        report_urls(report), 403
    )
    # The list, searched for the call's text or filtered by the function, does not show the report.
    row = "%s%d/change/" % (REPORTS, report.pk)
    assert row in admin_http.get(REPORTS + "?q=private").text  # (the superuser finds it so)
    for query in ("?q=private", "?task__command__name=%s" % GREET, "?task__id__exact=%d" % task.pk):
        listing = reader.get(REPORTS + query)
        assert listing.status in (200, 400) and row not in listing.text, query
    assert "hidden-name" not in task_status(reader, task)[str(task.pk)]["status_html"]


def test_a_runner_gets_no_run_of_a_superusers_only_function_by_any_path(server, admin_http, commands, staff):
    """Held: Save as new, the bulk actions, Run now (with other arguments) and a crafted edit all refuse."""
    activate(GREET, run_by=Command.RunBy.SUPERUSERS)
    activate(NAP)  # a function they may run: the task's command is not swapped for it either
    task = add_task(admin_http, commands, "theirs", GREET, '{"args": ["ada"]}')
    staff("view_task", "add_task", "change_task", "run_task", "view_report")
    runner = client_for(server.url, "staff")
    copy = {**change_page(runner, task), "name": "mine", "_saveasnew": "Save as new"}
    answer = runner.post(TASK_URL + "%d/change/" % task.pk, {**copy, "command": commands[GREET].pk})
    assert answer.status == 200 and not Task.objects.filter(name="mine").exists(), answer.url
    for action in ("start_tasks", "run_tasks_now"):
        bulk_action(runner, action, task)
    for button in ("start", "run-now"):
        press(runner, task, button, status=None)
    url = TASK_URL + "%d/run-with-arguments/" % task.pk
    answer = runner.post(url, {"arguments": '{"args": ["bob"]}', "version": task.version})
    assert answer.status in (200, 403)
    edit = {**change_page(runner, task), "command": commands[NAP].pk, "arguments": '{"args": [1]}'}
    runner.post(TASK_URL + "%d/change/" % task.pk, {**edit, "_save": "Save"})
    task.refresh_from_db()
    assert (task.command_id, task.arguments, task.status) == (commands[GREET].pk, '{"args": ["ada"]}', "IDLE")
    assert not task.reports.exists()


def test_locked_arguments_compare_the_call_that_runs(server, admin_http, commands, staff):
    """Held: another spelling is accepted only when it is the same call, and the run makes that call.

    JSON keeps the last of duplicate keys, on save and at the run alike:
    ``{"args": ["evil"], "args": ["ada"]}`` is the approved call and runs as it.
    """
    activate(GREET, locked_arguments=True)
    commands[GREET].approved_arguments.create(arguments='{"args": ["ada"]}')
    staff("view_task", "add_task", "change_task", "run_task", "view_report")
    runner = client_for(server.url, "staff")
    for number, text in enumerate(
        [
            '{"args": ["ada"], "kwargs": {"times": 1}}',  # the default, spelled: another argv
            '{"kwargs": {"name": "ada"}}',
            '{"args": ["ada"], "args": ["evil"]}',
            '{"args": ["ad\\u0061 "]}',
        ]
    ):
        answer = runner.post(TASK_URL + "add/", task_form(commands, "try %d" % number, GREET, text))
        assert "are locked" in form_errors(answer), text
    task = add_task(runner, commands, "same", GREET, '{"args": ["evil"], "args": ["\\u0061da"]}')
    press(runner, task, "start")
    report = finished_report(task)
    assert report.command_line == '%s("ada")' % GREET and "hello ada" in log_of(report), log_of(report)

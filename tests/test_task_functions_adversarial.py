"""Adversarial tests of the @task functions a Task runs (issue 19), through real uWSGI.

Each test is a finding of the adversarial review of the function tasks,
written failing first; its docstring says the weakness as found, and the
test now guards its fix (helpers in tests/support/admin.py and
security.py). What was tried and held is in the review's report.
"""

import pytest

from taskmanager.djangotasks import api
from taskmanager.models import Command, Task

from .support.admin import TASK_URL, add_task, page_fields, press, task_form
from .support.adminclient import form_errors
from .support.security import shown_messages

if api.SOURCE is None:
    pytest.skip("@task functions need the django.tasks API: %s" % api.MISSING, allow_module_level=True)

pytestmark = pytest.mark.db_sensitive

GREET = "tests.testapp.tasks.greet"
COMMAND_URL = "/admin/taskmanager/command/%d/change/"


def activate(*names, **fields) -> None:
    """Activate the collected functions ``names`` (a superuser's act, here straight in the database)."""
    Command.objects.filter(name__in=names, kind=Command.Kind.FUNCTION).update(active=True, **fields)


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

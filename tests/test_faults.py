"""Faults a person must be told about in words they can act on (issue 13), through the real uWSGI server."""

import pytest

from taskmanager.models import Task

from .support.admin import TASK_URL, press, task_form
from .support.adminclient import form_errors

pytestmark = pytest.mark.django_db(transaction=True)


def test_use_tz_false_is_named_by_the_form_and_by_start(uwsgi_node, commands):
    # uWSGI serves without running system checks: with USE_TZ = False the
    # form refused every schedule with "The current time must include a
    # time zone.", which names no setting.
    node = uwsgi_node(settings={"USE_TZ": False}, spooler_processes=1)
    resp = node.admin.post(TASK_URL + "add/", task_form(commands, "naive", "tm_ok"))
    errors = form_errors(resp)
    assert "USE_TZ" in errors and "taskmanager.E003" in errors, errors
    assert not Task.objects.filter(name="naive").exists()
    # A task saved before the setting changed: Start says the same, and nothing runs.
    task = Task.objects.create(name="older", command=commands["tm_ok"])
    page = press(node.admin, task, "start").text
    assert "USE_TZ" in page and "taskmanager.E003" in page, page[:3000]
    task.refresh_from_db()
    assert (task.status, task.run_token) == ("IDLE", "")

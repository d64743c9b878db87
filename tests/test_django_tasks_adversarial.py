"""django.tasks results against careless and hostile users (issue 18), through a real uWSGI server.

What a result page shows is redacted as its run's log is; a task named like a function's carrier
neither blocks the queue nor can be made in the admin; a return value that cannot be stored ends
the result FAILED with that error. Where django.tasks or its backport is installed, as
tests/test_django_tasks.py.
"""

import os
import signal

import pytest

from taskmanager.djangotasks import api

if api.SOURCE is None:
    pytest.skip(api.MISSING, allow_module_level=True)

from taskmanager.models import DjangoTaskResult, Task  # noqa: E402 - after the skip

from .support.admin import task_form  # noqa: E402
from .support.adminclient import client_for, form_errors  # noqa: E402
from .support.djtasks import NODE_QUEUE, enqueue, finished_row  # noqa: E402
from .support.procs import gone  # noqa: E402
from .support.waits import wait_for  # noqa: E402

pytestmark = pytest.mark.db_sensitive

RESULTS_URL = "/admin/taskmanager/djangotaskresult/"
#: A URL whose password the redaction rules replace (docs/security.rst, "Secrets in logs").
SECRET = "hunter2-not-for-eyes"


def test_a_result_page_redacts_secrets_as_its_runs_log_does(server, superuser):
    """A function's exception and return value are shown redacted, as the run's log shows them."""
    admin = client_for(server.url, "admin")
    failed = finished_row(enqueue(server, "fail", "cannot reach postgres://app:%s@db/x" % SECRET))
    returned = finished_row(enqueue(server, "add", "redis://:%s" % SECRET[:7], "%s@cache" % SECRET[7:]))
    assert failed.status == "FAILED" and returned.status == "SUCCESSFUL"
    assert returned.return_value == "redis://:%s@cache" % SECRET  # the API keeps the value as it is
    log = admin.get("/admin/taskmanager/report/%d/log/" % failed.report_id).text
    assert "postgres://app:[redacted]@db/x" in log and SECRET not in log
    page = admin.get(RESULTS_URL + "%s/change/" % failed.pk).text
    assert "postgres://app:[redacted]@db/x" in page
    assert SECRET not in page
    page = admin.get(RESULTS_URL + "%s/change/" % returned.pk).text
    assert "redis://:[redacted]@cache" in page and SECRET not in page


def test_a_task_named_like_a_carrier_does_not_block_the_queue(server, commands):
    """A task of another command holding a function's carrier name (made before the rule below,
    or in the database): that function's calls end FAILED saying why, and the calls behind them
    in the queue run."""
    Task.objects.create(name="django.tasks: tests.testapp.djtasks.add", command=commands["tm_ok"])
    blocked = enqueue(server, "add", 1, 2)
    behind = enqueue(server, "fail", "behind")
    row = wait_for(
        lambda: DjangoTaskResult.objects.filter(pk=behind, status="FAILED").first(),
        message="the call behind the blocked one to run",
    )
    assert "ValueError: behind" in row.errors[0]["traceback"]
    row = wait_for(
        lambda: DjangoTaskResult.objects.filter(pk=blocked, status="FAILED").first(),
        message="the call of the blocked function to fail",
    )
    (error,) = row.errors
    assert error["exception_class_path"] == "taskmanager.exceptions.Crashed"
    assert "django.tasks: tests.testapp.djtasks.add" in error["traceback"]


def test_the_admin_refuses_a_task_named_like_a_carrier(server, superuser, commands):
    admin = client_for(server.url, "admin")
    name = "django.tasks: tests.testapp.djtasks.add"
    answer = admin.post("/admin/taskmanager/task/add/", task_form(commands, name))
    assert "django.tasks: " in form_errors(answer)
    assert not Task.objects.filter(name=name).exists()


def test_a_return_value_that_cannot_be_stored_ends_failed_with_that_error(server):
    row = finished_row(enqueue(server, "give", "bigint"))
    assert row.status == "FAILED"
    (error,) = row.errors
    assert error["exception_class_path"] == "builtins.ValueError", error
    assert "integer string conversion" in error["traceback"]


def test_a_return_value_of_no_json_type_ends_failed_saying_it_is_the_return_value(server):
    row = finished_row(enqueue(server, "give", "date"))
    assert row.status == "FAILED"
    (error,) = row.errors
    assert error["exception_class_path"] == "builtins.TypeError", error
    assert "The return value of tests.testapp.djtasks.give cannot be stored as JSON" in error["traceback"]


def test_a_huge_exception_message_ends_failed_with_it(server, superuser):
    row = finished_row(enqueue(server, "give", "huge_error"))
    assert row.status == "FAILED"
    (error,) = row.errors
    assert error["exception_class_path"] == "builtins.ValueError"
    assert "x" * 1000 in error["traceback"]
    page = client_for(server.url, "admin").get(RESULTS_URL + "%s/change/" % row.pk)
    assert page.status == 200


def test_the_task_list_speaks_of_carriers_only_to_who_may_see_task_results(server, superuser):
    """The Task list's line about the functions' carriers links Task results: a user who may not
    see them (403) is not told how many functions run there."""
    from .support.security import make_staff

    finished_row(enqueue(server, "add", 1, 1))
    make_staff("tasks-only", "view_task")
    listing = client_for(server.url, "tasks-only").get("/admin/taskmanager/task/")
    assert listing.status == 200
    assert "django.tasks function" not in listing.text and RESULTS_URL not in listing.text
    assert "django.tasks function" in client_for(server.url, "admin").get("/admin/taskmanager/task/").text


def test_a_spooler_killed_mid_function_leaves_its_result_failed_interrupted_never_running(uwsgi_node):
    """SIGKILL of the spooler running a function: its child dies with it (the death chain), the
    respawned spooler's recovery closes the run, and the result ends FAILED with
    ``taskmanager.exceptions.Interrupted``; the next call of the queue still runs."""
    # A queue the session's uWSGI does not serve (its periodic pass could take the calls first).
    settings = {"TASKMANAGER_RECOVERY_SECONDS": 1, "TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE]}
    node = uwsgi_node(settings=settings, spooler_processes=1, login=False)
    long_id = enqueue(node, "sleep", 600, queue=NODE_QUEUE)
    running = wait_for(
        lambda: DjangoTaskResult.objects.filter(
            pk=long_id, status="RUNNING", report__pid__isnull=False
        ).first(),
        message="the long function to run",
    )
    spooler, child = running.report.supervisor_pid, running.report.pid
    os.kill(spooler, signal.SIGKILL)
    wait_for(lambda: gone(child), message="the function's child to die with its spooler")
    row = finished_row(long_id)
    assert row.status == "FAILED"
    assert [e["exception_class_path"] for e in row.errors] == ["taskmanager.exceptions.Interrupted"], (
        row.errors
    )
    assert finished_row(enqueue(node, "add", 1, 2, queue=NODE_QUEUE)).return_value == 3

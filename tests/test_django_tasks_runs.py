"""django.tasks runs (issue 18), through a real uWSGI server: async functions, one function per
reused child, the retention of old results, and carrier tasks left out of every task list and count.

Where django.tasks or its backport is installed, as tests/test_django_tasks.py.
"""

import datetime
import re

import pytest

from taskmanager.djangotasks import api

if api.SOURCE is None:
    pytest.skip(api.MISSING, allow_module_level=True)

from taskmanager import dbclock  # noqa: E402 - after the skip
from taskmanager.models import DjangoTaskResult, Report, Task, TaskCategory  # noqa: E402

from .support.adminclient import client_for  # noqa: E402
from .support.djtasks import NODE_QUEUE, enqueue, finished_row  # noqa: E402
from .support.objects import make_report, make_task  # noqa: E402
from .support.waits import wait_for  # noqa: E402

pytestmark = pytest.mark.db_sensitive


def test_an_async_function_runs_in_the_child_and_its_result_is_stored(server):
    """``supports_async_task``: an ``async def`` @task enqueues (no InvalidTask) and runs in a
    supervised child, in an event loop (Django's ``Task.call``), its log captured."""
    from tests.testapp import djtasks

    assert djtasks.greet.get_backend().supports_async_task
    row = finished_row(enqueue(server, "greet", "Ada"))
    assert row.status == "SUCCESSFUL", row.errors
    assert row.return_value == {"greeting": "hello Ada", "in_loop": True}
    result = djtasks.greet.get_result(row.pk)
    assert result.return_value["greeting"] == "hello Ada"
    assert row.report.pid != row.report.supervisor_pid
    assert "greeting Ada" in row.report.log_lines.values_list("text", flat=True)


def test_a_reused_child_serves_the_runs_of_one_function_only(uwsgi_node):
    """With ``RUNS_PER_CHILD`` above 1 a child is kept for the next run of the same *function*:
    every call runs the one internal command, yet a child of ``pid_a`` never runs ``pid_b``.
    Each function returns the pid of the child that ran it; one spooler process, so that each
    run may take the child the run before it left."""
    # A queue the session's uWSGI does not serve: its periodic pass would run some of these calls.
    settings = {"TASKMANAGER_RUNS_PER_CHILD": 10, "TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE]}
    node = uwsgi_node(settings=settings, spooler_processes=1, login=False)
    pids = {"pid_a": [], "pid_b": []}
    for name in ["pid_a", "pid_a", "pid_b", "pid_b", "pid_a", "pid_a", "pid_b", "pid_b"]:
        row = finished_row(enqueue(node, name, queue=NODE_QUEUE))
        assert row.status == "SUCCESSFUL", row.errors
        pids[name].append(row.return_value)
    assert not set(pids["pid_a"]) & set(pids["pid_b"]), pids
    # Reuse happened: a function's second call ran in its first call's child.
    assert pids["pid_a"][0] == pids["pid_a"][1] and pids["pid_b"][0] == pids["pid_b"][1], pids


def test_finished_results_older_than_results_days_are_pruned_by_the_periodic_pass(uwsgi_node):
    """``TASKMANAGER_RESULTS_DAYS``: a result that ended longer ago than that goes at a spooler's
    periodic pass; a recent one and one not finished stay."""
    # A queue the session's uWSGI does not serve: a 600 s call taken at its periodic pass would hold it.
    settings = {
        "TASKMANAGER_RECOVERY_SECONDS": 1,
        "TASKMANAGER_RESULTS_DAYS": 2,
        "TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE],
    }
    node = uwsgi_node(settings=settings, login=False)
    old_ok, old_failed, recent = (
        finished_row(enqueue(node, name, *args, queue=NODE_QUEUE))
        for name, args in (("add", (1, 2)), ("fail", ("old",)), ("add", (3, 4)))
    )
    running_id = enqueue(node, "sleep", 600, queue=NODE_QUEUE)
    wait_for(
        lambda: DjangoTaskResult.objects.filter(pk=running_id, status="RUNNING").exists(),
        message="the long function to run",
    )
    long_ago = dbclock.now() - datetime.timedelta(days=3)
    DjangoTaskResult.objects.filter(pk__in=[old_ok.pk, old_failed.pk]).update(finished_at=long_ago)
    DjangoTaskResult.objects.filter(pk=running_id).update(enqueued_at=long_ago, started_at=long_ago)
    wait_for(
        lambda: not DjangoTaskResult.objects.filter(pk__in=[old_ok.pk, old_failed.pk]).exists(),
        message="the old results to be pruned",
    )
    assert DjangoTaskResult.objects.filter(pk=recent.pk, status="SUCCESSFUL").exists()
    assert DjangoTaskResult.objects.filter(pk=running_id, status="RUNNING").exists()


def test_a_kept_result_keeps_its_log_past_reports_kept_runs_of_its_function(uwsgi_node, commands):
    """A result's page links its run's log: the log stays while the result does (kept by age),
    however many runs its function has had since; once the result goes, its report is counted as
    any other (``TASKMANAGER_REPORTS_KEPT``). A command task beside it shows the pass pruned."""
    node = uwsgi_node(
        settings={
            "TASKMANAGER_RECOVERY_SECONDS": 1,
            "TASKMANAGER_REPORTS_KEPT": 2,
            "TASKMANAGER_RESULTS_DAYS": 2,
            "TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE],
        },
        login=False,
    )
    rows = [finished_row(enqueue(node, "add", n, n, queue=NODE_QUEUE)) for n in range(4)]
    control = make_task(commands, "pruned beside the results")
    for _n in range(4):
        make_report(control)
    wait_for(lambda: control.reports.count() == 2, message="the pass to prune the command task's reports")
    carrier = rows[0].report.task
    assert carrier.reports.count() == 4  # each kept result keeps its log
    assert all(Report.objects.filter(pk=row.report_id).exists() for row in rows)
    # Three results go by age: their reports are then counted, the newest 2 of them kept.
    long_ago = dbclock.now() - datetime.timedelta(days=3)
    DjangoTaskResult.objects.filter(pk__in=[row.pk for row in rows[:3]]).update(finished_at=long_ago)
    wait_for(lambda: carrier.reports.count() == 3, message="the pass to prune the carrier's orphaned reports")
    assert Report.objects.filter(pk=rows[3].report_id).exists()


def test_carrier_tasks_are_left_out_of_the_command_and_category_task_lists_and_counts(server, superuser):
    """The rule of the Task list (no carrier tasks) holds on the Command list's and the Category
    list's task counts, and on a category page's tasks."""
    carrier = finished_row(enqueue(server, "add", 1, 2)).report.task
    assert carrier.is_carrier
    category = TaskCategory.objects.create(name="functions")
    Task.objects.filter(pk=carrier.pk).update(category=category)  # carriers get none in the admin
    admin = client_for(server.url, "admin")

    def counts(page: str) -> list[str]:
        return re.findall(r'<td class="field-task_count">(\d+)</td>', page)

    commands = admin.get("/admin/taskmanager/command/?q=_run_task_result")
    assert commands.status == 200 and "_run_task_result" in commands.text
    assert counts(commands.text) == ["0"]
    categories = admin.get("/admin/taskmanager/taskcategory/")
    assert counts(categories.text) == ["0"]
    page = admin.get("/admin/taskmanager/taskcategory/%d/change/" % category.pk)
    assert page.status == 200 and carrier.name not in page.text


def test_the_internal_commands_page_says_what_it_is_and_offers_nothing_without_effect(server, superuser):
    """Its badge is not "blocked by settings" (its calls do run) and its active flag and argument
    lock, which change nothing, are not offered; who may run it still is (the results' rights)."""
    command = finished_row(enqueue(server, "add", 1, 2)).report.task.command
    assert command.is_carrier
    page = client_for(server.url, "admin").get("/admin/taskmanager/command/%d/change/" % command.pk).text
    assert "django.tasks calls" in page and "blocked by settings" not in page
    assert 'name="active"' not in page and 'name="locked_arguments"' not in page
    assert 'name="run_by"' in page


def test_a_functions_module_is_imported_by_the_fork_server_from_its_first_run_on(uwsgi_node):
    """A fresh child finds the function's module imported by the fork server it is forked from:
    the first run of a function no fork server imported gets a new one that does, and the later
    runs are forked from it (no import per run)."""
    node = uwsgi_node(settings={"TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE]}, spooler_processes=1, login=False)
    runs = [finished_row(enqueue(node, "imported_by", queue=NODE_QUEUE)).return_value for _ in range(2)]
    for run in runs:
        assert run["imported_by"] == run["parent"] != run["pid"], runs
    assert runs[0]["parent"] == runs[1]["parent"], runs  # one fork server, not one per run
    assert runs[0]["pid"] != runs[1]["pid"]

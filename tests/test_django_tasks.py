"""django.tasks on the uWSGI spooler (issue 18), through a real uWSGI server.

A function enqueued in a web worker runs in a spooler's supervised child,
its log captured with levels into a report, its result stored in the row
and read from this process (``get_result()``, ``refresh()``).

Django 6.0+'s django.tasks, or on Django 5.2 the django-tasks backport
(``taskmanager.djangotasks.api``; the test extra installs it, so the main
suite runs these on 5.2 through the backport and tox's django60/django61
envs through core). Where neither is installed the module is skipped,
saying what is missing.
"""

import pytest

from taskmanager.djangotasks import api

if api.SOURCE is None:
    pytest.skip(api.MISSING, allow_module_level=True)

from taskmanager.djangotasks.api import TaskResultStatus  # noqa: E402 - after the skip
from taskmanager.models import Command, DjangoTaskResult, LogLine  # noqa: E402

from .support.djtasks import NODE_QUEUE, enqueue, finished_row, tm_enqueue  # noqa: E402
from .support.waits import wait_for  # noqa: E402

pytestmark = pytest.mark.db_sensitive


def finished(result):
    """Wait until ``result`` (a TaskResult) is finished, refreshing it from the database; return it."""

    def done():
        result.refresh()
        return result.is_finished

    wait_for(done, message="task result %s to finish" % result.id)
    return result


def ended_report(result_id: str):
    """Wait until the run of the row ``result_id`` has its report closed; return the report."""
    row = wait_for(
        lambda: DjangoTaskResult.objects.filter(
            pk=result_id, report__finished_datetime__isnull=False
        ).first(),
        message="the report of task result %s to end" % result_id,
    )
    return row.report


def test_enqueued_function_runs_in_a_supervised_child_and_its_result_is_read_here(server):
    from tests.testapp import djtasks

    result_id = enqueue(server, "add", 2, 3)
    result = finished(djtasks.add.get_result(result_id))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == 5
    assert result.args == [2, 3] and result.kwargs == {}
    assert len(result.worker_ids) == 1 and result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    report = ended_report(result_id)
    # Supervised by a spooler process, run in a child of its own.
    assert report.supervisor_pid in server.spooler_pids()
    assert report.pid and report.pid != report.supervisor_pid
    assert report.trigger == "enqueue"
    assert report.task.name == "django.tasks: tests.testapp.djtasks.add"
    lines = {line.text: line for line in report.log_lines.all()}
    assert lines["adding 2 and 3"].level == LogLine.Level.WARNING, lines
    assert lines["the sum is 5"].level == LogLine.Level.INFO
    assert (report.result, report.end_kind, report.warnings) == ("WARNINGS", "completed", 1)


def test_a_function_that_raises_ends_failed_with_its_exception(server):
    from tests.testapp import djtasks

    result_id = enqueue(server, "fail", "boom")
    result = finished(djtasks.fail.get_result(result_id))
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "ValueError: boom" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018 - the property raises
    report = ended_report(result_id)
    assert report.result == "FAILED"
    # Once: Django's own receiver logs the failure with its traceback (error monitoring tools
    # see it), so the run path does not print it again; one exception, one error.
    texts = list(report.log_lines.values_list("text", flat=True))
    assert sum("ValueError: boom" in text for text in texts) == 1, texts
    assert report.errors == 1, texts
    assert report.end_kind == "crashed" and "ValueError" in report.end_reason, (
        report.end_kind,
        report.end_reason,
    )


def test_a_run_past_the_backends_time_out_ends_failed_with_timed_out(uwsgi_node):
    from tests.testapp import djtasks

    backend = {
        "BACKEND": "taskmanager.djangotasks.backend.SpoolerTaskBackend",
        "QUEUES": ["default", NODE_QUEUE],
        "OPTIONS": {"TIMEOUT": 1},
    }
    # A queue the session's uWSGI does not serve: its periodic pass, with no time-out of 1 s,
    # could otherwise take the call first (CI's MariaDB stage, once: a 600 s run, a test timed out).
    node = uwsgi_node(
        settings={"TASKS": {"default": backend}, "TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE]}, login=False
    )
    result_id = enqueue(node, "sleep", 600, queue=NODE_QUEUE)
    result = finished(djtasks.sleep.get_result(result_id))
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == "taskmanager.exceptions.TimedOut"
    assert "timed out after 1 seconds" in error.traceback
    report = ended_report(result_id)
    assert (report.result, report.end_kind) == ("FAILED", "timed out")


def test_a_row_enqueued_where_no_spooler_is_runs_at_a_spoolers_periodic_pass(uwsgi_node):
    """Enqueued on another machine (no uWSGI, no local spooler node: no spool hint can be written),
    the row is run by a spooler serving its queue at its periodic pass (``recovery/results.py``),
    and its result read here;
    while the other spooler runs a long function, whose hint it holds (that hint is not work
    still to come). The calls are of a queue only this node serves: the session's server, another
    live node on this database, must not take them at its own pass."""
    from tests.testapp import djtasks

    node = uwsgi_node(
        settings={"TASKMANAGER_RECOVERY_SECONDS": 1, "TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE]}, login=False
    )
    long_id = enqueue(node, "sleep", 600, queue=NODE_QUEUE)
    wait_for(
        lambda: DjangoTaskResult.objects.filter(pk=long_id, status="RUNNING").exists(),
        message="the long function to run",
    )
    result_id = tm_enqueue("add", 20, 22, queue=NODE_QUEUE, elsewhere=True)
    result = finished(djtasks.add.get_result(result_id))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == 42
    report = ended_report(result.id)
    assert report.supervisor_pid in node.spooler_pids()
    assert report.task.name == "django.tasks: tests.testapp.djtasks.add"
    assert DjangoTaskResult.objects.get(pk=long_id).status == "RUNNING"


RESULTS_URL = "/admin/taskmanager/djangotaskresult/"


def test_the_results_admin_lists_shows_and_escapes_a_result_and_links_its_log(server, superuser):
    from tests.support.adminclient import client_for

    ok_id = enqueue(server, "add", 2, 3)
    failed_id = enqueue(server, "fail", "<b>boom</b>")
    finished_rows = [finished_row(pk) for pk in (ok_id, failed_id)]
    assert [row.status for row in finished_rows] == ["SUCCESSFUL", "FAILED"]
    admin = client_for(server.url, "admin")
    listing = admin.get(RESULTS_URL + "?status__exact=FAILED")
    assert listing.status == 200
    assert failed_id in listing.text and ok_id not in listing.text
    assert "tests.testapp.djtasks.fail" in listing.text
    assert ok_id in admin.get(RESULTS_URL + "?q=" + ok_id).text
    page = admin.get(RESULTS_URL + "%s/change/" % failed_id)
    assert page.status == 200
    assert "builtins.ValueError" in page.text
    assert "ValueError: &lt;b&gt;boom&lt;/b&gt;" in page.text and "<b>boom</b>" not in page.text
    report_id = DjangoTaskResult.objects.get(pk=failed_id).report_id
    assert "/admin/taskmanager/report/%d/log/" % report_id in page.text
    assert "boom" in admin.get("/admin/taskmanager/report/%d/log/" % report_id).text
    # And back: the run's report page links its result.
    report_page = admin.get("/admin/taskmanager/report/%d/change/" % report_id).text
    assert 'href="%s%s/change/">%s</a>' % (RESULTS_URL, failed_id, failed_id) in report_page
    ok_page = admin.get(RESULTS_URL + "%s/change/" % ok_id).text
    assert '<pre class="tm-json">5</pre>' in ok_page
    # Read-only: no add page, no save, no delete.
    assert admin.get(RESULTS_URL + "add/").status == 403
    assert 'name="_save"' not in ok_page and "/delete/" not in ok_page


def test_the_results_admin_needs_the_report_read_rights_too(server):
    from tests.support.adminclient import client_for
    from tests.support.security import make_staff

    result_id = enqueue(server, "add", 1, 1)
    finished_row(result_id)
    make_staff("results-only", "view_djangotaskresult")
    make_staff("reader", "view_djangotaskresult", "view_report")
    only = client_for(server.url, "results-only")
    assert result_id not in only.get(RESULTS_URL).text
    assert only.get(RESULTS_URL + "%s/change/" % result_id).status == 403
    # view_report, but the carrier command is for superusers only (its default): still nothing.
    reader = client_for(server.url, "reader")
    assert reader.get(RESULTS_URL + "%s/change/" % result_id).status == 403
    Command.objects.filter(name="_run_task_result").update(run_by=Command.RunBy.PERMISSION)
    assert reader.get(RESULTS_URL + "%s/change/" % result_id).status == 200
    assert result_id in reader.get(RESULTS_URL).text


def test_stop_in_the_results_admin_stops_that_run_only(server, superuser):
    from tests.support.adminclient import client_for

    admin = client_for(server.url, "admin")
    result_id = enqueue(server, "sleep", 600)
    wait_for(
        lambda: DjangoTaskResult.objects.filter(pk=result_id, status="RUNNING").exists(),
        message="the function to run",
    )
    page = admin.get(RESULTS_URL + "%s/change/" % result_id)
    assert "/%s/stop/" % result_id in page.text
    assert admin.get(RESULTS_URL + "%s/stop/" % result_id).status == 405
    assert admin.post(RESULTS_URL + "%s/stop/" % result_id, csrf=False).status == 403
    assert admin.post(RESULTS_URL + "%s/stop/" % result_id).status == 200
    row = finished_row(result_id)
    assert row.status == "FAILED"
    assert [e["exception_class_path"] for e in row.errors] == ["taskmanager.exceptions.Stopped"]
    assert ended_report(result_id).stopped_by.username == "admin"


def test_carrier_tasks_are_not_offered_as_tasks_to_start(server, superuser):
    """The carrier of a function's runs is left out of the Task list (which says so and links the
    results); its page, reached from a report, is read-only with no Start, Stop or Run now; a Start
    posted by hand is refused by the rules (no run)."""
    from tests.support.adminclient import client_for

    result_id = enqueue(server, "add", 1, 2)
    carrier = ended_report(result_id).task
    admin = client_for(server.url, "admin")
    listing = admin.get("/admin/taskmanager/task/")
    assert listing.status == 200
    assert "django.tasks: tests.testapp.djtasks.add" not in listing.text
    assert "django.tasks function are not listed here" in listing.text and RESULTS_URL in listing.text
    # Not counted either: Django's "0 results (1 total)" shows when the two counts differ.
    assert " total</a>)" not in listing.text
    # Nor offered as an app to filter by (the app of the internal command).
    assert "?command__app_name=taskmanager" not in listing.text
    page = admin.get("/admin/taskmanager/task/%d/change/" % carrier.pk)
    assert page.status == 200
    assert "This task carries the runs of the django.tasks function tests.testapp.djtasks.add" in page.text
    for button in ("start", "stop", "run-now", "run-with-arguments"):
        assert "/admin/taskmanager/task/%d/%s/" % (carrier.pk, button) not in page.text
    assert 'name="_save"' not in page.text
    # Nor a definition's fields and previews: "Next runs ... if the task is started now".
    assert "field-schedule_preview" not in page.text and "field-arguments" not in page.text
    assert "field-runs_chart" in page.text
    reports = carrier.reports.count()
    answer = admin.post("/admin/taskmanager/task/%d/start/" % carrier.pk)
    assert "never runs as a task of its own" in answer.text
    assert carrier.reports.count() == reports

"""Start inside a transaction (ATOMIC_REQUESTS, the admin's save) hands over after commit.

An idle spooler picks a spool file up within a millisecond; had the entry
been spooled before the token it carries was committed, the spooler would
read the old state, consume the entry as stale, and the task would wait for
ever.
"""

import pytest

from taskmanager.models import AuditEntry, Report, Task

from .support.admin import add_task, bulk_action, edit_task, press
from .support.objects import make_task
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_start_and_edit_under_atomic_requests(uwsgi_node, commands):
    atomic_server = uwsgi_node({"ATOMIC_REQUESTS": True, "TM_TEST_COMMIT_DELAY": 0.3})
    client = atomic_server.admin
    for attempt in range(2):
        task = add_task(client, commands, "atomic-%d" % attempt, "tm_ok")
        assert "was started" in press(client, task, "start").text
        report = finished_report(task)
        assert report.result == "OK"
        task.refresh_from_db()
        assert task.status == Task.Status.IDLE
    # A pending one-shot task edited to run at once, saved inside the admin's transaction.
    later = add_task(client, commands, "edited", "tm_ok", scheduling_0="2999-01-01", scheduling_1="10:00:00")
    assert "is scheduled: next run" in press(client, later, "start").text
    edit_task(client, later, arguments="--lines 1", scheduling_0="", scheduling_1="")
    report = finished_report(later)
    assert report.result == "OK"


def test_the_start_action_under_atomic_requests(uwsgi_node, commands):
    """The list's Start action spools each entry once the request's transaction has committed."""
    atomic_server = uwsgi_node({"ATOMIC_REQUESTS": True, "TM_TEST_COMMIT_DELAY": 0.3})
    tasks = [make_task(commands, "atomic-bulk-%d" % i, arguments="--lines 1") for i in range(5)]
    bulk_action(atomic_server.admin, "start_tasks", *tasks)
    for task in tasks:
        assert finished_report(task).result == "OK"
    wait_for(
        lambda: not Task.objects.filter(pk__in=[t.pk for t in tasks]).exclude(status="IDLE").exists(),
        message="the started tasks to end",
    )
    assert {Report.objects.filter(task=t).count() for t in tasks} == {1}
    # Run by their own entries: none was consumed as stale and respooled by the recovery.
    assert set(Report.objects.filter(task__in=tasks).values_list("trigger", flat=True)) == {
        Report.Trigger.START
    }
    assert AuditEntry.objects.filter(action="start").count() == 5

"""Start inside a transaction (ATOMIC_REQUESTS, the admin's save) hands over after commit.

An idle spooler picks a spool file up within a millisecond; had the entry
been spooled before the token it carries was committed, the spooler would
read the old state, consume the entry as stale, and the task would wait for
ever.
"""

import json

import pytest

from taskmanager.models import Report, Task

from .adminclient import AdminClient
from .conftest import PASSWORD, server_env, wait_for
from .test_end_to_end import add_task, finished_report, press
from .uwsgi_server import UwsgiServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def atomic_server(transactional_db):
    server = UwsgiServer(env={**server_env(), "TM_TEST_SETTINGS": json.dumps({"ATOMIC_REQUESTS": True, "TM_TEST_COMMIT_DELAY": 0.3})})
    server.start()
    yield server
    server.stop()


def test_start_and_edit_under_atomic_requests(atomic_server, superuser, commands):
    client = AdminClient(atomic_server.url)
    client.login("admin", PASSWORD)
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
    resp = client.post(
        "/admin/taskmanager/task/%d/change/" % later.pk,
        {
            "name": "edited",
            "command": commands["tm_ok"].pk,
            "arguments": "--lines 1",
            "note": "",
            "scheduling_0": "",
            "scheduling_1": "",
            "reports-TOTAL_FORMS": "0",
            "reports-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )
    assert resp.status == 200
    report = wait_for(
        lambda: Report.objects.filter(task=later, finished_datetime__isnull=False).first(),
        message="the edited task to run",
    )
    assert report.result == "OK"

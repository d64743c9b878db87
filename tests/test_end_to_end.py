"""The main job, end to end: admin Start -> real uWSGI spooler -> command -> Report."""

import json
import os
import re

import pytest

from taskmanager.models import Report, Task

from .conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def add_task(client, commands, name, command, arguments=""):
    """Create a task through the admin add form; return the Task."""
    resp = client.post(
        "/admin/taskmanager/task/add/",
        {
            "name": name,
            "command": commands[command].pk,
            "arguments": arguments,
            "note": "",
            "reports-TOTAL_FORMS": "0",
            "reports-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )
    assert resp.status == 200, resp.text[:2000]
    task = Task.objects.filter(name=name).first()
    assert task is not None, re.findall(r'class="errorlist[^"]*">(.*?)</ul>', resp.text, re.S)
    return task


def press(client, task, button):
    return client.post("/admin/taskmanager/task/%d/%s/" % (task.pk, button))


def finished_report(task, timeout=30):
    return wait_for(
        lambda: Report.objects.filter(task=task, finished_datetime__isnull=False).first(),
        timeout=timeout,
        message="a finished report of %s" % task.name,
    )


def test_start_runs_command_in_spooler_child(server, admin_http, commands):
    task = add_task(admin_http, commands, "whoami", "tm_whoami")
    resp = press(admin_http, task, "start")
    assert resp.status == 200
    report = finished_report(task)
    assert report.result == "OK", list(report.log_lines.values_list("text", flat=True))
    assert report.end_reason == "completed"
    identity = json.loads(report.log_lines.get(seq=1).text)
    spoolers = server.spooler_pids()
    assert identity["ppid"] in spoolers
    assert identity["pid"] == report.pid != os.getpid()
    assert identity["pgid"] == identity["pid"]
    assert report.host == identity["host"]
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert task.last_result == "OK"
    page = admin_http.get("/admin/taskmanager/task/%d/change/" % task.pk)
    assert "complete log with filters" in page.text
    assert "/admin/taskmanager/report/%d/log/" % report.pk in page.text

"""Who may read what a run printed (issue 14): a command's run rights also decide who reads its reports.

Through the real uWSGI server: the report list and the task page leave out
what the user may not read, the report's page, log, follow and download
answer 403, and the task list and its status JSON show no progress of such a
run. Rows are made directly: what matters is who reads them.
"""

import html

import pytest
from django.contrib.auth.models import Group

from taskmanager import policy
from taskmanager.models import Command

from .support.adminclient import client_for
from .support.objects import add_log_lines, make_report, make_task
from .support.reading import REPORTS, read_report, report_urls, task_status

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = "/admin/taskmanager/task/"
#: The commands of the fixture, by who may run them.
EVERYONE, GROUP, SUPERUSERS = "tm_ok", "tm_echo", "tm_warn"


@pytest.fixture
def audience(commands):
    """Three running tasks, one per kind of run rights, each with a log line and a progress message."""
    ops = Group.objects.create(name="ops")
    Command.objects.filter(pk=commands[GROUP].pk).update(run_by=Command.RunBy.GROUPS)
    commands[GROUP].groups.set([ops])
    Command.objects.filter(pk=commands[SUPERUSERS].pk).update(run_by=Command.RunBy.SUPERUSERS)
    runs = {}
    for name in (EVERYONE, GROUP, SUPERUSERS):
        task = make_task(commands, "read-%s" % name, name, status="STARTED")
        report = make_report(
            task, running=True, progress_done=1, progress_total=4, progress_message="progress of %s" % name
        )
        add_log_lines(report, ["line of %s" % name])
        runs[name] = (task, report)
    return ops, runs


def readers(staff, ops):
    """{username: the commands whose reports the user may read}."""
    member = staff("view_task", "view_report", username="member")
    member.groups.add(ops)
    staff("view_task", "view_report", username="outsider")
    # run_task does not widen what one reads: the command's groups decide.
    staff("view_task", "view_report", "run_task", "delete_report", username="runner")
    return {
        "member": {EVERYONE, GROUP},
        "outsider": {EVERYONE},
        "runner": {EVERYONE},
        "admin": {EVERYONE, GROUP, SUPERUSERS},
    }


@pytest.mark.db_sensitive
def test_reports_are_read_by_who_may_see_the_command(server, staff, superuser, audience):
    ops, runs = audience
    for username, readable in readers(staff, ops).items():
        client = client_for(server.url, username)
        report_list = client.get(REPORTS)
        task_list = client.get(TASKS)
        assert report_list.status == 200 and task_list.status == 200
        status = task_status(client, *(task for task, _report in runs.values()))
        for name, (task, report) in runs.items():
            may = name in readable
            where = (username, name)
            # The report list leaves the report out.
            assert ("read-%s" % name in report_list.text) is may, where
            # Its page, log, follow and download: 200 with the line, or 403 without it.
            for view, resp in read_report(client, report).items():
                assert resp.status == (200 if may else 403), (where, view, resp.status)
                assert ("line of %s" % name in html.unescape(resp.text)) is may, (where, view)
            # The task stays visible (its name, status, result are the task's), not what the run printed.
            page = client.get("%s%d/change/" % (TASKS, task.pk))
            assert page.status == 200 and "read-%s" % name in page.text, where
            assert ("line of %s" % name in page.text) is may, (where, "tail on the task page")
            assert ("progress of %s" % name in page.text) is may, (where, "progress on the task page")
            assert ("progress of %s" % name in task_list.text) is may, (where, "progress in the task list")
            entry = status[str(task.pk)]
            assert entry["status"] == "STARTED", where
            assert ("progress of %s" % name in entry["status_html"]) is may, (where, "status JSON")
            # The list's cells, refreshed by the same request (issue 16, item 5), hide it too.
            assert ("progress of %s" % name in entry["cells"]["status_badge"]) is may, (where, "status cells")
            assert (entry["percent"] is not None) is may, (where, "status JSON percent")


def test_unreadable_reports_cannot_be_deleted_either(server, staff, audience):
    ops, runs = audience
    readers(staff, ops)
    client = client_for(server.url, "runner")
    task, _running = runs[SUPERUSERS]
    report = make_report(task)  # finished: deleting it needs no right to Stop
    add_log_lines(report, ["finished line"])
    assert client.get("%s%d/delete/" % (REPORTS, report.pk)).status == 403
    resp = client.post(REPORTS, {"action": "delete_selected", "_selected_action": [report.pk], "post": "yes"})
    assert resp.status in (200, 403)
    report.refresh_from_db()  # still there
    assert report.log_lines.count() == 1


def test_one_rule_for_reading(staff, audience, superuser):
    ops, runs = audience
    readers(staff, ops)
    from django.contrib.auth.models import User

    users = {u.username: u for u in User.objects.all()}
    commands = {name: Command.objects.get(name=name) for name in runs}
    for username, readable in {
        "member": {EVERYONE, GROUP},
        "outsider": {EVERYONE},
        "admin": {EVERYONE, GROUP, SUPERUSERS},
    }.items():
        user = users[username]
        assert {name for name, c in commands.items() if policy.may_read(user, c)} == readable, username
        names = set(policy.readable_commands(user).filter(name__in=runs).values_list("name", flat=True))
        assert names == readable, username
        reports = policy.readable_reports(
            type(runs[EVERYONE][1]).objects.filter(pk__in=[r.pk for _t, r in runs.values()]), user
        )
        assert {r.task.command.name for r in reports} == readable, username
    # view_report is still needed, whatever the command's rights.
    tasks_only = staff("view_task", username="tasks-only")
    assert not policy.may_read(tasks_only, commands[EVERYONE])
    assert not policy.readable_commands(tasks_only).exists()
    assert policy.may_read(superuser, commands[SUPERUSERS])
    assert report_urls(runs[EVERYONE][1])["log"].endswith("/log/")

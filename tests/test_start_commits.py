"""Start and the list's Start action, each one transaction (issue 17), through the real uWSGI server.

A Start press is one durable commit: the conditional UPDATE that starts the
task (the rights it can check in its WHERE) and the audit entry; the spool
entry is written on commit. The list's Start action starts every selected
task the user may start with one UPDATE, one INSERT of their audit entries
and one spool entry each; the others are left out, counted in its summary,
and each says why, as its Start button would. What a request did to the
database is told by ``tests/support/sqlcount.py`` (``X-TM-Count-SQL``).
"""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from taskmanager import actions
from taskmanager.models import AuditEntry, Command, Report, Task, new_token

from .support.objects import make_task
from .support.security import (
    TASKS,
    assert_nothing_ran,
    login,
    make_staff,
    shown_messages,
    spool_entries,
    spooled_for,
)
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COUNT = {"X-TM-Count-SQL": "1"}
WRITES = ("INSERT", "UPDATE", "DELETE")


def database_work(resp) -> tuple[list[str], int]:
    """(statements as "VERB table", durable commits) of a request sent with ``COUNT``."""
    return resp.headers["X-TM-SQL"].split("|"), int(resp.headers["X-TM-Commits"])


def writes(statements: list[str]) -> list[str]:
    return [s for s in statements if s.split()[0] in WRITES]


def start_action(client, *tasks):
    """The list's Start action on ``tasks``, counted; return (statements, commits, messages shown)."""
    resp = client.post(
        TASKS,
        {"action": "start_tasks", "_selected_action": [t.pk for t in tasks], "index": "0"},
        follow=False,
        headers=COUNT,
    )
    assert resp.status == 302, resp.text[:2000]
    return (*database_work(resp), shown_messages(client.get(TASKS)))


@pytest.mark.db_sensitive
def test_a_start_press_is_one_transaction_and_one_commit(server, admin_http, commands):
    task = make_task(commands, "counted", arguments="--lines 1")
    resp = admin_http.post(
        TASKS + "%d/start/" % task.pk, {"version": task.version}, follow=False, headers=COUNT
    )
    assert resp.status == 302
    statements, commits = database_work(resp)
    assert commits == 1, statements
    assert writes(statements) == ["UPDATE taskmanager_task", "INSERT taskmanager_auditentry"], statements
    # The task is read once (the rights are checked on that read, the version too).
    assert statements.count("SELECT taskmanager_task") == 1, statements
    assert finished_report(task).result == "OK"
    (entry,) = AuditEntry.objects.filter(action="start", object_id=str(task.pk))
    assert entry.changes["status"] == ["IDLE", "SPOOLED"]
    assert "was started" in shown_messages(admin_http.get(TASKS + "%d/change/" % task.pk))


@pytest.mark.db_sensitive
def test_the_update_checks_that_the_command_is_still_active(superuser, commands):
    """A command switched off between the read and the UPDATE: nothing starts, and the refusal says why."""
    task = make_task(commands, "stale", arguments="--lines 1")
    read = Task.objects.select_related("command").get(pk=task.pk)
    Command.objects.filter(pk=read.command_id).update(active=False)
    outcome = actions.start(read, superuser)  # its rules are checked on the command as read: active
    assert not outcome.ok and "cannot start. The command tm_ok is not active" in outcome.message
    assert (Task.objects.get(pk=task.pk).status, Task.objects.get(pk=task.pk).run_token) == ("IDLE", "")
    assert not AuditEntry.objects.filter(action="start").exists()


@pytest.mark.db_sensitive
def test_the_start_action_starts_what_the_user_may_start_once_each(server, collected):
    person = make_staff("runner", "run_task", "view_task")
    runner = login(server, "runner")
    now = timezone.now()
    mine = [make_task(collected, "mine-%02d" % i, arguments="--lines 1") for i in range(12)]
    later = [
        make_task(collected, "later-%d" % i, arguments="--lines 1", scheduling=now + timedelta(hours=i + 1))
        for i in range(3)
    ]
    # A queue this node does not serve: left to a spooler node serving it (no entry here).
    elsewhere = make_task(collected, "elsewhere", arguments="--lines 1", queue="gpu")
    Command.objects.filter(pk=collected["tm_echo"].pk).update(run_by=Command.RunBy.SUPERUSERS)
    theirs = make_task(collected, "theirs", command="tm_echo", arguments="x")
    inactive = make_task(collected, "inactive", command="fakeext_report")
    waiting = make_task(
        collected, "waiting", status="SCHEDULED", run_token=new_token(), next_datetime=now + timedelta(days=1)
    )
    before = spool_entries(server)

    statements, commits, shown = start_action(runner, *mine, *later, elsewhere, theirs, inactive, waiting)

    assert (
        "12 tasks were started, 3 tasks are scheduled, 1 task is queued for a spooler node, "
        "3 tasks could not start." in shown
    ), shown
    assert "“theirs” cannot start. Only superusers may run tasks of the command tm_echo" in shown, shown
    assert "“inactive” cannot start. The command fakeext_report is not active" in shown, shown
    assert "“waiting” is already scheduled: next run" in shown, shown
    # One UPDATE starts them all, one INSERT audits them; the scheduled ones'
    # spool files are recorded after the commit (recovery finds them by path).
    assert writes(statements) == [
        "UPDATE taskmanager_task",
        "INSERT taskmanager_auditentry",
        "UPDATE taskmanager_task",
    ], statements
    assert commits == 2, statements
    # The tasks are read once (beside the list's two counts): no query per task.
    assert statements.count("SELECT taskmanager_task") <= 3, statements
    # Each allowed task ran (or waits) once, spooled once, audited once as the runner's act.
    for task in mine:
        assert finished_report(task).result == "OK"
    wait_for(
        lambda: not Task.objects.filter(pk__in=[t.pk for t in mine]).exclude(status="IDLE").exists(),
        message="the started tasks to end",
    )
    assert {t.pk: Report.objects.filter(task=t).count() for t in mine} == {t.pk: 1 for t in mine}
    for task in later:
        current = Task.objects.get(pk=task.pk)
        assert current.status == "SCHEDULED" and current.next_datetime == task.scheduling
        (entry,) = spooled_for(server, task, before)
        assert entry["token"] == current.run_token
        assert os.path.basename(current.spooler_id) in spool_entries(server) - before
    left = Task.objects.get(pk=elsewhere.pk)
    assert (left.status, left.spooler_node, spooled_for(server, left, before)) == ("SPOOLED", "", [])
    started = AuditEntry.objects.filter(action="start")
    assert sorted(int(e.object_id) for e in started) == sorted(t.pk for t in [*mine, *later, elsewhere])
    assert {e.actor_name for e in started} == {"runner"}
    assert {Task.objects.get(pk=t.pk).started_by_id for t in [*later, elsewhere]} == {person.pk}
    for task in (theirs, inactive):
        assert_nothing_ran(server, task, before)
    assert Task.objects.get(pk=waiting.pk).run_token == waiting.run_token
    # Pressed again: nothing starts twice.
    _statements, _commits, shown = start_action(runner, *later)
    assert "3 tasks could not start" in shown and shown.count("is already scheduled") == 3, shown
    runner.post(
        TASKS, {"action": "stop_tasks", "_selected_action": [t.pk for t in [*later, elsewhere]], "index": "0"}
    )


def test_the_start_action_with_posted_ids_that_are_no_ids_starts_nothing_and_says_so(server, collected):
    # A hand-made POST: ids that are no ids (Django filters the list by them
    # as they are: a ValueError, a 500 for each of them), and one id thrice.
    make_staff("runner", "run_task", "view_task")
    runner = login(server, "runner")
    task = make_task(collected, "once", arguments="--lines 1")
    before = spool_entries(server)
    for ids in (["x"], ["1.5"], [""], [str(10**30)], ["²"], [task.pk, "x"]):
        resp = runner.post(
            TASKS, {"action": "start_tasks", "_selected_action": ids, "index": "0"}, follow=False
        )
        assert resp.status == 302, (ids, resp.text[:2000])
        assert "No items have been changed" in shown_messages(runner.get(TASKS)), ids
    assert_nothing_ran(server, task, before)
    _statements, _commits, shown = start_action(runner, task, task, task)
    assert "1 task was started." in shown, shown
    assert finished_report(task).result == "OK"
    assert Report.objects.filter(task=task).count() == AuditEntry.objects.filter(action="start").count() == 1

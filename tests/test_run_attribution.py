"""Who started a run and who defined it (issue 14), and saves from an older page, through uWSGI.

Each report names who started its run and who last defined what it ran
(with the definition's version); Run now and edits never re-attribute the
scheduled runs. A task's definition version counts definition edits only,
and a save from a page rendered before the current version is refused,
keeping the user's input.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from taskmanager.models import AuditEntry, Report, Task

from .support.admin import change_page, page_fields, save_change_page
from .support.security import (
    add_form,
    fire_pending_run,
    form_errors,
    login,
    make_staff,
    press,
    shown_messages,
)
from .support.waits import finished_report, finished_reports

pytestmark = pytest.mark.django_db(transaction=True)

DEFINERS = ("add_task", "change_task", "run_task", "view_task", "view_report")


def _tomorrow() -> dict:
    when = timezone.localtime() + timedelta(days=1)
    return {"scheduling_0": when.strftime("%Y-%m-%d"), "scheduling_1": when.strftime("%H:%M:%S")}


@pytest.mark.db_sensitive
def test_run_now_and_edits_never_reattribute_the_scheduled_runs(server, collected):
    alice, _bob, carol = (
        make_staff("alice", *DEFINERS),
        make_staff("bob", "run_task", "view_task", "view_report"),
        make_staff("carol", *DEFINERS),
    )
    as_alice, as_bob, as_carol = login(server, "alice"), login(server, "bob"), login(server, "carol")
    add_form(
        as_alice,
        "daily",
        collected["tm_ok"],
        "--lines 1",
        repetition_period="day",
        repetition_rate="1",
        **_tomorrow(),
    )
    task = Task.objects.get(name="daily")
    try:
        # A starts the periodic task; B presses Run now.
        assert "is scheduled" in shown_messages(press(as_alice, task, "start"))
        assert "will run now" in shown_messages(press(as_bob, task, "run-now"))
        run_now = finished_report(task)
        # The next scheduled run is still A's.
        scheduled = fire_pending_run(server, task)
        runs = [
            (r.trigger, r.user.username, r.user_name, r.defined_by.username, r.definition_version)
            for r in (run_now, scheduled)
        ]
        assert runs == [
            ("run now", "bob", "bob", "alice", 1),
            ("schedule", "alice", "alice", "alice", 1),
        ]
        # C edits what it runs: the queued run is replaced, still in A's name, "defined by C".
        data = change_page(as_carol, task)
        resp = save_change_page(as_carol, task, data, arguments="--lines 2")
        assert "/change/" not in resp.url, form_errors(resp)
        task = Task.objects.get(pk=task.pk)
        assert (task.started_by.username, task.definition_changed_by.username, task.version) == (
            "alice",
            "carol",
            2,
        )
        assert task.status == "SCHEDULED" and task.run_token
        edited = fire_pending_run(server, task)
        assert (edited.result, edited.command_line) == ("OK", "manage.py tm_ok --lines 2")
        assert (edited.user.username, edited.defined_by.username, edited.definition_version) == (
            "alice",
            "carol",
            2,
        )
        # The report page says both.
        page = as_alice.get("/admin/taskmanager/report/%d/change/" % edited.pk).text
        assert "carol (definition version 2)" in page and "alice" in page
        # Spooler writes (status, tokens, results) did not change the version.
        assert Task.objects.get(pk=task.pk).version == 2
    finally:
        press(as_alice, Task.objects.get(pk=task.pk), "stop")
    assert alice.pk and carol.pk


@pytest.mark.db_sensitive
def test_a_save_from_an_older_page_is_refused(server, collected):
    make_staff("alice", *DEFINERS)
    make_staff("carol", *DEFINERS)
    as_alice, as_carol = login(server, "alice"), login(server, "carol")
    add_form(
        as_alice,
        "two-tabs",
        collected["tm_ok"],
        "--lines 1",
        repetition_period="day",
        repetition_rate="1",
        **_tomorrow(),
    )
    task = Task.objects.get(name="two-tabs")
    assert "is scheduled" in shown_messages(press(as_alice, task, "start"))
    try:
        # Two tabs open the same task.
        first, second = change_page(as_alice, task), change_page(as_carol, task)
        assert first["loaded_version"] == second["loaded_version"] == "1"
        resp = save_change_page(as_alice, task, first, arguments="--lines 2")
        assert "/change/" not in resp.url, form_errors(resp)
        saved = Task.objects.get(pk=task.pk)
        assert (saved.arguments, saved.version) == ("--lines 2", 2)
        # The second tab saves what it showed: refused, naming who and when.
        resp = save_change_page(as_carol, task, second, arguments="--lines 3", note="carol's note")
        assert "/change/" in resp.url
        errors = form_errors(resp)
        assert "Not saved: alice changed what this task runs" in errors, errors
        assert "Arguments = --lines 2" in errors, errors
        # Nothing saved, nothing re-queued.
        now = Task.objects.get(pk=task.pk)
        assert (now.arguments, now.note, now.version, now.definition_changed_by.username) == (
            "--lines 2",
            "",
            2,
            "alice",
        )
        assert (now.run_token, now.status) == (saved.run_token, "SCHEDULED")
        assert AuditEntry.objects.filter(action="edit", object_id=str(task.pk)).count() == 1
        # The form keeps carol's input, now carrying the current version.
        kept = page_fields(resp.text, "task_form")
        assert (kept["arguments"], kept["note"], kept["loaded_version"]) == ("--lines 3", "carol's note", "2")
        # Saving it again is a deliberate overwrite.
        resp = save_change_page(as_carol, task, kept)
        assert "/change/" not in resp.url, form_errors(resp)
        now = Task.objects.get(pk=task.pk)
        assert (now.arguments, now.note, now.version) == ("--lines 3", "carol's note", 3)
    finally:
        press(as_alice, Task.objects.get(pk=task.pk), "stop")


@pytest.mark.db_sensitive
def test_only_definition_edits_raise_the_version(server, collected):
    make_staff("alice", *DEFINERS)
    as_alice = login(server, "alice")
    add_form(as_alice, "runs-twice", collected["tm_ok"], "--lines 1")
    task = Task.objects.get(name="runs-twice")
    page = change_page(as_alice, task)
    # Runs (the spooler's writes of status, tokens, results) leave the version alone ...
    assert "was started" in shown_messages(press(as_alice, task, "start"))
    finished_report(task)
    assert "will run now" in shown_messages(press(as_alice, task, "run-now"))
    finished_reports(task, 2)
    assert Task.objects.get(pk=task.pk).version == 1
    # ... so the page opened before them still saves; a name or note edit keeps the version.
    resp = save_change_page(as_alice, task, page, name="runs-twice-renamed", note="renamed")
    assert "/change/" not in resp.url, form_errors(resp)
    task = Task.objects.get(pk=task.pk)
    assert (task.name, task.version) == ("runs-twice-renamed", 1)
    assert Report.objects.filter(task=task).count() == 2


def _save_together(clients, task, pages, arguments) -> dict:
    """Post each client's page (``pages``) with its ``arguments`` at the same moment; return the answers."""
    import threading

    barrier, answers = threading.Barrier(len(clients)), {}

    def save(name):
        barrier.wait()
        answers[name] = clients[name].post(
            "/admin/taskmanager/task/%d/change/" % task.pk,
            {**pages[name], "arguments": arguments[name], "_save": "Save"},
        )

    threads = [threading.Thread(target=save, args=(name,)) for name in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


@pytest.mark.db_sensitive
def test_two_saves_at_once_from_the_same_version_save_one(server, collected):
    """Two tabs saving at the same moment: the row lock lets one through and refuses the other."""
    make_staff("alice", *DEFINERS)
    make_staff("carol", *DEFINERS)
    clients = {"alice": login(server, "alice"), "carol": login(server, "carol")}
    add_form(clients["alice"], "racing", collected["tm_ok"], "--lines 1")
    task = Task.objects.get(name="racing")
    for round_ in range(1, 6):
        pages = {name: change_page(client, task) for name, client in clients.items()}
        arguments = {"alice": "--lines %d" % (round_ * 10 + 1), "carol": "--lines %d" % (round_ * 10 + 2)}
        answers = _save_together(clients, task, pages, arguments)
        saved = [name for name, resp in answers.items() if "/change/" not in resp.url]
        refused = [name for name, resp in answers.items() if "Not saved:" in form_errors(resp)]
        assert len(saved) == 1 and len(refused) == 1, (round_, saved, refused)
        now = Task.objects.get(pk=task.pk)
        assert (now.version, now.arguments) == (round_ + 1, arguments[saved[0]])
        assert now.definition_changed_by.username == saved[0]


@pytest.mark.db_sensitive
def test_an_edit_the_starter_may_not_run_stops_the_schedule(server, admin_http, collected):
    """A superuser changes Alice's waiting task to a command for superusers only: it is not re-queued
    in Alice's name (her run would be refused at every slot) but stopped, and the editor is told why."""
    make_staff("alice", *DEFINERS)
    as_alice = login(server, "alice")
    collected["tm_echo"].run_by = "superusers"
    collected["tm_echo"].save()
    add_form(
        as_alice,
        "alices",
        collected["tm_ok"],
        "--lines 1",
        repetition_period="day",
        repetition_rate="1",
        **_tomorrow(),
    )
    task = Task.objects.get(name="alices")
    assert "is scheduled" in shown_messages(press(as_alice, task, "start"))
    resp = save_change_page(
        admin_http, task, change_page(admin_http, task), command=str(collected["tm_echo"].pk), arguments="hi"
    )
    assert "/change/" not in resp.url, form_errors(resp)
    message = shown_messages(resp)
    assert "“alices” is stopped: alice, who started it, may not run it as it is now" in message, message
    task = Task.objects.get(pk=task.pk)
    assert (task.status, task.run_token, task.started_by.username) == ("IDLE", "", "alice")

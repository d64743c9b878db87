""""Save as new" on the task page (issue 16, item 13), through the real uWSGI server.

The copy is a new task with the same definition and none of the run state,
under a name of its own; the rights of an add and of the definition hold.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from taskmanager.forms import RUN_FIELDS
from taskmanager.models import ApprovedArguments, AuditEntry, Command, Task, TaskCategory

from .support.admin import change_page, page_fields
from .support.objects import make_report, make_superuser
from .support.security import form_errors, login, make_staff

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = "/admin/taskmanager/task/"
#: The fields of a task's definition, which the copy takes.
DEFINITION = (
    "command_id",
    "arguments",
    "category_id",
    "note",
    "timeout",
    "notify",
    "queue",
    "scheduling",
    "repetition_period",
    "repetition_rate",
)


def save_as_new(client, task, **changes):
    """Press "Save as new" on the task's page (as a browser posts it), with ``changes``; return the answer."""
    data = {**change_page(client, task), **changes, "_saveasnew": "Save as new"}
    return client.post(TASKS + "%d/change/" % task.pk, data)


def original(commands, **fields) -> Task:
    """A task that has run: a definition, and run state the copy must not take."""
    admin = make_superuser()
    task = Task.objects.create(
        name="nightly",
        command=commands["tm_ok"],
        arguments="--lines 2, --word copy",
        category=TaskCategory.objects.create(name="reports"),
        note="the nightly one",
        timeout=120,
        notify=True,
        scheduling=(timezone.now() + timedelta(days=1)).replace(microsecond=0),  # the form's precision
        repetition_period="day",
        repetition_rate=1,
        **fields,
    )
    Task.objects.filter(pk=task.pk).update(
        last_datetime=timezone.now() - timedelta(hours=1),
        last_result="WARNINGS",
        last_duration=timedelta(seconds=3),
        errors=2,
        warnings=5,
        version=4,
        started_by=admin,
        started_by_name="admin",
        started_version=3,
        run_now_by=admin,
        run_now_by_name="admin",
        run_now_at=timezone.now(),
        definition_changed_by=admin,
        spooler_node="elsewhere:/spool",
        payload_version=2,
    )
    make_report(task)
    task.refresh_from_db()
    return task


def test_the_copy_has_the_definition_and_none_of_the_run_state(server, admin_http, commands):
    task = original(commands)
    page = admin_http.get(TASKS + "%d/change/" % task.pk).text
    assert 'name="_saveasnew"' in page
    resp = save_as_new(admin_http, task, name="nightly (copy)")
    copy = Task.objects.filter(name="nightly (copy)").first()
    assert copy is not None, form_errors(resp)
    assert resp.url.endswith(TASKS + "%d/change/" % copy.pk), resp.url
    assert copy.pk != task.pk
    assert {f: getattr(copy, f) for f in DEFINITION} == {f: getattr(task, f) for f in DEFINITION}
    fresh = Task(name="x", command=task.command)
    for field in (
        "status",
        "run_token",
        "run_now_token",
        "run_now_at",
        "run_now_arguments",
        "run_now_by_id",
        "run_now_by_name",
        "started_by_id",
        "started_by_name",
        "started_version",
        "spooler_id",
        "spooler_node",
        "payload_version",
        "resume_status",
        "last_datetime",
        "last_result",
        "last_duration",
        "errors",
        "warnings",
        "next_datetime",
        "overdue_notified_at",
        "version",
    ):
        assert getattr(copy, field) == getattr(fresh, field), field
    assert (copy.status, copy.version, copy.errors, copy.next_datetime) == ("IDLE", 1, 0, None)
    assert copy.reports.count() == 0 and task.reports.count() == 1
    assert copy.definition_changed_by.username == "admin"
    # The original is as it was.
    before = task
    task.refresh_from_db()
    assert (task.name, task.version, task.errors, task.arguments) == ("nightly", 4, 2, before.arguments)
    # Audited as an add, in the copy's name.
    entry = AuditEntry.objects.get(action="create", object_id=str(copy.pk))
    assert entry.actor_name == "admin" and entry.changes["arguments"] == [None, task.arguments]
    assert entry.changes["name"] == [None, "nightly (copy)"]
    assert not AuditEntry.objects.filter(object_type="task", object_id=str(task.pk)).exists()


def test_an_unchanged_name_is_a_form_error(server, admin_http, commands):
    task = original(commands)
    resp = save_as_new(admin_http, task)
    assert resp.status == 200
    assert "Task with this Name already exists." in form_errors(resp)
    assert Task.objects.count() == 1
    assert 'name="_saveasnew"' in resp.text  # the page offers it again, not Save


def test_save_as_new_needs_the_add_permission(server, commands):
    task = original(commands)
    make_staff("changer", "view_task", "change_task", "run_task")
    changer = login(server, "changer")
    assert 'name="_saveasnew"' not in changer.get(TASKS + "%d/change/" % task.pk).text
    assert save_as_new(changer, task, name="not allowed").status == 403
    assert Task.objects.count() == 1
    make_staff("adder", "view_task", "add_task", "change_task", "run_task")
    adder = login(server, "adder")
    assert 'name="_saveasnew"' in adder.get(TASKS + "%d/change/" % task.pk).text
    save_as_new(adder, task, name="allowed")
    assert Task.objects.filter(name="allowed").exists()


def test_locked_arguments_hold_for_the_copy(server, commands):
    command = commands["tm_ok"]
    task = original(commands)
    ApprovedArguments.objects.create(command=command, arguments=task.arguments)
    Command.objects.filter(pk=command.pk).update(locked_arguments=True)
    make_staff("adder", "view_task", "add_task", "change_task", "run_task")
    adder = login(server, "adder")
    resp = save_as_new(adder, task, name="other args", arguments="--lines 9")
    assert "are locked" in form_errors(resp)
    assert not Task.objects.filter(name="other args").exists()
    save_as_new(adder, task, name="same args")
    assert Task.objects.get(name="same args").arguments == task.arguments


def test_a_user_who_may_not_run_the_command_cannot_copy_it(server, commands):
    task = original(commands)
    Command.objects.filter(pk=task.command_id).update(run_by=Command.RunBy.SUPERUSERS)
    make_staff("limited", "view_task", "add_task", "change_task", "run_task")
    limited = login(server, "limited")
    page = limited.get(TASKS + "%d/change/" % task.pk).text
    # The definition is read-only to them (disabled): a browser posts none of it.
    assert re.search(r'<select name="command"[^>]* disabled', page)
    fields = {k: v for k, v in page_fields(page, "task_form").items() if k not in RUN_FIELDS}
    fields.update(name="copied", _saveasnew="Save as new")
    resp = limited.post(TASKS + "%d/change/" % task.pk, fields)
    assert "This field is required." in form_errors(resp)
    # Nor can a crafted post name the command (or other arguments).
    resp = save_as_new(limited, task, name="copied", command=str(task.command_id), arguments="--lines 9")
    assert "Select a valid choice" in form_errors(resp)
    assert Task.objects.count() == 1

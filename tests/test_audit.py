"""The audit (issue 14): who started, stopped, changed or deleted what, with the values before and after.

Through the real uWSGI server: the buttons, the list's actions, the task and
command forms, the deletions, collection; the audit list is read-only for
everyone; entries outlive what they describe and are pruned after
``TASKMANAGER_AUDIT_DAYS``.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskmanager import actions, audit, retention
from taskmanager.management.commands.collect_commands import collect
from taskmanager.models import AuditEntry, Command, Report, Task
from taskmanager.recovery import periodic_steps

from .support.admin import add_task, bulk_action, edit_task, page_fields, press
from .support.objects import make_report, make_task
from .support.security import login, make_staff, shown_messages
from .support.waits import finished_report, finished_reports

pytestmark = pytest.mark.django_db(transaction=True)

AUDIT = "/admin/taskmanager/auditentry/"


def entries(**filters) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("pk"))


def actions_of(task) -> list[tuple[str, str]]:
    """(action, actor) of the task's entries, oldest first."""
    return [(e.action, e.actor_name) for e in audit.for_object("task", task.pk).order_by("pk")]


@pytest.mark.db_sensitive
def test_buttons_edits_and_deletions_of_a_task_are_audited(server, admin_http, superuser, collected):
    task = add_task(admin_http, collected, "audited", arguments="--lines 1")
    (created,) = entries(action="create")
    assert (created.actor_id, created.actor_name, created.object_type, created.object_id) == (
        superuser.pk,
        "admin",
        "task",
        str(task.pk),
    )
    assert created.changes["arguments"] == [None, "--lines 1"]
    assert created.changes["command"] == [None, "tm_ok (tests.testapp)"]

    # Start and Run now, each once its run is queued.
    assert "was started" in shown_messages(press(admin_http, task, "start"))
    finished_report(task)
    (started,) = entries(action="start")
    assert started.changes["status"] == ["IDLE", "SPOOLED"]
    assert "will run now" in shown_messages(press(admin_http, task, "run-now"))
    finished_reports(task, 2)
    assert len(entries(action="run now")) == 1
    # A refused button records nothing.
    assert "is neither running nor scheduled" in shown_messages(press(admin_http, task, "stop"))
    assert entries(action="stop") == []

    # An edit: the values before and after, the new definition version.
    edit_task(admin_http, task, arguments="--lines 2", note="two lines")
    (edited,) = entries(action="edit")
    assert edited.changes == {"arguments": ["--lines 1", "--lines 2"], "note": ["", "two lines"]}
    assert "Definition version 2." in edited.message
    # An edit of the note only is recorded too, without a new version.
    edit_task(admin_http, task, note="")
    assert entries(action="edit")[-1].changes == {"note": ["two lines", ""]}
    assert Task.objects.get(pk=task.pk).version == 2

    # Scheduled, then stopped.
    tomorrow = timezone.localtime() + timedelta(days=1)
    edit_task(
        admin_http,
        task,
        scheduling_0=tomorrow.strftime("%Y-%m-%d"),
        scheduling_1=tomorrow.strftime("%H:%M:%S"),
    )
    assert "is scheduled" in shown_messages(press(admin_http, task, "start"))
    assert "was stopped" in shown_messages(press(admin_http, task, "stop"))
    (stopped,) = entries(action="stop")
    assert (stopped.actor_name, stopped.object_id) == ("admin", str(task.pk))

    # A report deleted from the admin: its entry belongs to the task's history.
    report = Report.objects.filter(task=task).order_by("pk").first()
    resp = admin_http.post("/admin/taskmanager/report/%d/delete/" % report.pk, {"post": "yes"})
    assert resp.status == 200 and not Report.objects.filter(pk=report.pk).exists()
    (deleted_report,) = entries(action="delete", object_type="report")
    assert (deleted_report.object_id, deleted_report.task_ref) == (str(report.pk), str(task.pk))

    # The task's history page lists it all, with before and after.
    page = admin_http.get("/admin/taskmanager/task/%d/history/" % task.pk)
    assert page.status == 200
    assert page.text.count('class="tm-audit-entry"') == len(actions_of(task)) == 9
    assert "--lines 1</del>" in page.text and "--lines 2</ins>" in page.text

    # The task deleted: its entries stay, and its deletion is one more.
    before = AuditEntry.objects.count()
    resp = admin_http.post("/admin/taskmanager/task/%d/delete/" % task.pk, {"post": "yes"})
    assert resp.status == 200 and not Task.objects.filter(pk=task.pk).exists()
    assert AuditEntry.objects.count() == before + 1
    (deleted,) = entries(action="delete", object_type="task")
    assert (deleted.object_repr, deleted.changes["arguments"]) == ("audited", ["--lines 2", None])
    # The actor deleted too: the entries keep their name.
    User.objects.filter(pk=superuser.pk).delete()
    assert {e.actor_name for e in entries(object_id=str(task.pk), object_type="task")} == {"admin"}


@pytest.mark.db_sensitive
def test_list_actions_and_bulk_deletion_are_audited_per_task(server, admin_http, superuser, collected):
    tasks = [make_task(collected, "bulk-%d" % i, arguments="--lines 1") for i in range(3)]
    bulk_action(admin_http, "run_tasks_now", *tasks)
    for task in tasks:
        finished_report(task)
    assert sorted(int(e.object_id) for e in entries(action="run now")) == [t.pk for t in tasks]
    resp = admin_http.post(
        "/admin/taskmanager/task/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [t.pk for t in tasks]},
    )
    assert resp.status == 200 and not Task.objects.filter(pk__in=[t.pk for t in tasks]).exists()
    assert sorted(e.object_repr for e in entries(action="delete")) == ["bulk-0", "bulk-1", "bulk-2"]


def test_an_action_that_did_not_commit_records_nothing(superuser, commands):
    # No uWSGI in this process: the Start cannot be spooled and is undone.
    task = make_task(commands, "unspoolable")
    outcome = actions.start(task, superuser)
    assert not outcome.ok and "No uWSGI spooler" in outcome.message
    assert Task.objects.get(pk=task.pk).status == "IDLE"
    assert entries(object_type="task") == []


def _command_form(client, command) -> dict:
    page = client.get("/admin/taskmanager/command/%d/change/" % command.pk)
    assert page.status == 200
    return page_fields(page.text, "command_form")


def _save_command(client, command, data, **changes):
    data = {**data, **changes, "_save": "Save"}
    resp = client.post("/admin/taskmanager/command/%d/change/" % command.pk, data)
    assert resp.status == 200 and "/change/" not in resp.url, resp.text[:3000]
    return resp


@pytest.mark.db_sensitive
def test_activation_and_run_rights_of_a_command_are_audited(server, admin_http, superuser, collected):
    command = collected["tm_ok"]
    ops = Group.objects.create(name="ops")
    data = _command_form(admin_http, command)
    data.update(
        {
            "run_by": "groups",
            "groups": [str(ops.pk)],
            "locked_arguments": "on",
            "approved_arguments-TOTAL_FORMS": "1",
            "approved_arguments-0-arguments": "--lines 1",
            "approved_arguments-0-command": str(command.pk),
        }
    )
    _save_command(admin_http, command, data)
    (rights,) = entries(action="rights")
    assert rights.changes == {
        "run_by": ["permission", "groups"],
        "groups": [[], ["ops"]],
        "locked_arguments": [False, True],
        "approved_arguments": [[], ["--lines 1"]],
    }
    # Deactivated by a user, then activated again.
    data = _command_form(admin_http, command)
    data.pop("active")
    _save_command(admin_http, command, data)
    _save_command(admin_http, command, _command_form(admin_http, command), active="on")
    toggles = entries(action__in=["activate", "deactivate"], object_id=str(command.pk), actor_name="admin")
    assert [(e.action, e.actor_name, e.changes) for e in toggles] == [
        ("deactivate", "admin", {"active": [True, False]}),
        ("activate", "admin", {"active": [False, True]}),
    ]
    # Deactivated by collection, named as such.
    gone = Command.objects.create(app_name="tests.testapp", name="tm_gone", active=True)
    collect(exclude_core=True)
    (by_collection,) = entries(action="deactivate", object_id=str(gone.pk))
    assert (by_collection.actor_id, by_collection.actor_name) == (None, "collect_commands")
    # The command's history page shows its entries.
    page = admin_http.get("/admin/taskmanager/command/%d/history/" % command.pk)
    # (its activation when collected, the rights, the deactivation, the activation)
    assert page.status == 200 and page.text.count('class="tm-audit-entry"') == 4
    assert "--lines 1</ins>" in page.text


def test_collection_records_only_what_it_changes(transactional_db):
    collect(exclude_core=True)
    added = entries(action="activate")
    # The project's own commands are added active: each is an activation by collection.
    assert added and {e.actor_name for e in added} == {"collect_commands"}
    assert {e.object_repr for e in added} >= {"tm_ok (tests.testapp)"}
    before = AuditEntry.objects.count()
    collect(exclude_core=True)
    collect(exclude_core=True, dry_run=True)
    assert AuditEntry.objects.count() == before


@pytest.mark.db_sensitive
def test_the_audit_list_is_read_only_for_everyone(server, admin_http, superuser, collected, staff):
    task = make_task(collected, "listed")
    entry = audit.record(audit.Action.START, task, user=superuser, changes={"status": ["IDLE", "SPOOLED"]})
    audit.record(audit.Action.STOP, task, actor="someone else")
    page = admin_http.get(AUDIT)
    assert page.status == 200 and "listed" in page.text
    # Filters: action, object type, actor; search; dates.
    for query, shown in [
        ("?action__exact=start", 1),
        ("?action__exact=stop&actor_name=someone+else", 1),
        ("?object_type__exact=task&q=listed", 2),
        ("?q=listed&when__gte=%s" % (timezone.localdate() - timedelta(days=1)).isoformat(), 2),
        ("?q=listed&when__lt=%s" % (timezone.localdate() - timedelta(days=1)).isoformat(), 0),
        ("?object_type__exact=report", 0),
    ]:
        page = admin_http.get(AUDIT + query)
        assert page.status == 200, query
        assert page.text.count('class="field-action"') == shown, query
    # The date drill-down, where the database can group dates (MySQL and
    # MariaDB need their time zone tables: without them the list leaves it out).
    page = admin_http.get(AUDIT + "?q=listed&when__year=%d" % timezone.localdate().year)
    assert page.status == 200
    if connection.vendor != "mysql":
        assert page.text.count('class="field-action"') == 2
        assert 'class="xfull"' in page.text or "date-hierarchy" in page.text or "toplinks" in page.text
    # No adding, changing or deleting, superusers included.
    assert admin_http.get(AUDIT + "add/").status == 403
    view = admin_http.get(AUDIT + "%d/change/" % entry.pk)
    assert view.status == 200 and 'name="_save"' not in view.text
    assert admin_http.post(AUDIT + "%d/change/" % entry.pk, {"action": "stop"}).status == 403
    assert admin_http.post(AUDIT + "%d/delete/" % entry.pk, {"post": "yes"}).status == 403
    resp = admin_http.post(
        AUDIT, {"action": "delete_selected", "post": "yes", "_selected_action": [entry.pk]}
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists(), resp.status
    assert AuditEntry.objects.get(pk=entry.pk).action == "start"
    # Staff need the view permission of the audit.
    staff("view_task", username="viewer")
    assert login(server, "viewer").get(AUDIT).status == 403
    make_staff("auditor", "view_auditentry")
    assert login(server, "auditor").get(AUDIT).status == 200


def test_old_entries_are_pruned_in_one_statement(transactional_db, settings):
    old = AuditEntry.objects.create(action="start", object_type="task", object_id="1", object_repr="t")
    AuditEntry.objects.filter(pk=old.pk).update(when=timezone.now() - timedelta(days=400))
    recent = AuditEntry.objects.create(action="stop", object_type="task", object_id="1", object_repr="t")
    AuditEntry.objects.filter(pk=recent.pk).update(when=timezone.now() - timedelta(days=300))
    settings.TASKMANAGER_AUDIT_DAYS = 0  # for ever
    assert audit.prune() == 0
    settings.TASKMANAGER_AUDIT_DAYS = 365
    with CaptureQueriesContext(connection) as queries:
        assert audit.prune() == 1
    assert [q["sql"].split()[0] for q in queries.captured_queries if "audit" in q["sql"]] == ["DELETE"]
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [recent.pk]
    # The periodic recovery pass does it.
    assert (audit.prune, ()) in periodic_steps()


def test_report_pruning_is_one_entry_per_prune(commands):
    task = make_task(commands, "pruned")
    for _ in range(8):
        make_report(task)
    assert retention.prune_reports(task.pk, keep=5) == 3
    (pruned,) = entries(action="prune")
    assert (pruned.actor_id, pruned.actor_name, pruned.object_id, pruned.object_repr) == (
        None,
        "system",
        str(task.pk),
        "pruned",
    )
    assert pruned.changes == {"reports": [3, 0]}
    assert retention.prune_reports(task.pk, keep=5) == 0
    assert len(entries(action="prune")) == 1


def test_entries_outlive_their_objects(commands, superuser):
    task = make_task(commands, "short-lived")
    report = make_report(task)
    audit.record(audit.Action.DELETE, report, user=superuser)
    audit.record(audit.Action.EDIT, task, user=superuser, changes={"note": ["", "x"]})
    task_id = task.pk
    task.delete()
    superuser.delete()
    assert [(e.object_type, e.actor_name, e.task_ref) for e in entries(actor_name="admin")] == [
        ("report", "admin", str(task_id)),
        ("task", "admin", ""),
    ]

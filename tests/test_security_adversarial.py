"""Adversarial tests of the security model (issue 11): attacks by ordinary staff users.

Each test here is a finding of the adversarial review, written failing
first; its docstring describes the weakness as it was found, and the test now
guards its fix. They go through the real uWSGI server where the attack does
(helpers in tests/support/security.py). What was tried and held is listed in
the issue's closing note, not tested here.
"""

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from taskmanager import policy
from taskmanager.models import Report, Task

from .support.scale import scaled
from .support.security import (
    TASKS,
    add_form,
    change_form,
    finished_report,
    fire_pending_run,
    form_errors,
    log_of,
    login,
    make_staff,
    press,
    running_report,
    shown_messages,
)
from .support.waits import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


# -- the identity a periodic chain runs under ------------------------------------------


@pytest.mark.db_sensitive
def test_run_now_by_another_user_does_not_take_over_a_periodic_task(server, admin_http, superuser, collected):
    """A user who presses Run now on someone else's periodic task becomes the starter of its whole chain.

    actions.run_now writes ``started_by`` of the task, which is also the
    identity the spooler's claim checks for every later *scheduled* run. So a
    low-rights user's one Run now (a) makes the later runs of the owner's
    schedule be checked against -- and attributed to -- them, and (b) when
    that user is then deactivated (or loses run_task, or the group), the
    owner's schedule ends "not allowed" at every slot.
    """
    make_staff("runner", "run_task", "view_task")
    runner = login(server, "runner")
    task = Task.objects.create(
        name="nightly",
        command=collected["tm_ok"],
        arguments="--lines 1",
        scheduling=timezone.now() + timedelta(days=1),
        repetition_period="day",
        repetition_rate=1,
    )
    assert "is scheduled" in shown_messages(press(admin_http, task, "start"))
    assert Task.objects.get(pk=task.pk).started_by_id == superuser.pk
    # The low-rights user runs it once.
    assert "will run now" in shown_messages(press(runner, task, "run-now"))
    assert finished_report(task).result == "OK"
    task = Task.objects.get(pk=task.pk)
    assert task.status == "SCHEDULED"
    # They leave the company: their account is deactivated.
    User.objects.filter(username="runner").update(is_active=False)
    # The owner's next scheduled run must still run, in the owner's name.
    try:
        report = fire_pending_run(server, task)
        assert (report.result, report.end_reason, report.user_id) == ("OK", "completed", superuser.pk), (
            report.result,
            report.end_reason,
            report.user_id,
            log_of(report),
        )
    finally:
        press(admin_http, Task.objects.get(pk=task.pk), "stop")


@pytest.mark.db_sensitive
def test_editing_a_running_periodic_task_checks_the_editors_rights_at_the_claim(
    server, admin_http, superuser, collected
):
    """Editing what a *running* periodic task runs keeps the next run in the original starter's name.

    actions.reschedule hands a STARTED task to _replace_next_run, which
    spools the edited definition's next run without changing ``started_by``
    (only SCHEDULED/SPOOLED tasks are restarted in the editor's name). So an
    editor's command line runs in a superuser's name (Report.user says the
    superuser), and the claim checks the superuser's rights, not the
    editor's: an editor deactivated right after the edit still gets the
    edited runs, for ever.

    Since issue 14 an edit re-queues the run under its starter (Run now and
    edits never re-attribute a run), and the report names the editor as who
    defined it: the claim checks the rights of the starter *and* of whoever
    changed the definition after the Start.
    """
    editor = make_staff("editor", "change_task", "run_task", "view_task")
    client = login(server, "editor")
    task = Task.objects.create(
        name="every-minute",
        command=collected["tm_sleep"],
        arguments="--seconds 4, --tick 0.2",
        repetition_period="minute",
        repetition_rate=1,
    )
    assert "was started" in shown_messages(press(admin_http, task, "start"))
    first = running_report(task)
    task = Task.objects.get(pk=task.pk)
    assert task.status == "STARTED" and task.run_token
    # While it runs, the editor changes what the next runs execute.
    resp = change_form(client, task, arguments="--seconds 0, --tick 0.1")
    task = Task.objects.get(pk=task.pk)
    assert task.arguments == "--seconds 0, --tick 0.1", form_errors(resp)
    # Then the editor is deactivated.
    User.objects.filter(pk=editor.pk).update(is_active=False)
    wait_for(lambda: Report.objects.get(pk=first.pk).finished_datetime, message="the first run to end")
    try:
        task = Task.objects.get(pk=task.pk)
        # The next run stays the starter's, defined by the editor ...
        assert (task.started_by_id, task.definition_changed_by_id) == (superuser.pk, editor.pk)
        # ... so the claim refuses it now that the editor is deactivated.
        report = fire_pending_run(server, task)
        assert (report.result, report.end_reason, report.user_id, report.defined_by_id) == (
            "FAILED",
            "not allowed",
            superuser.pk,
            editor.pk,
        ), (report.result, report.end_reason, report.user_id, report.command_line)
        assert "editor, who changed what this task runs after it was started" in log_of(report)[0]
    finally:
        press(admin_http, Task.objects.get(pk=task.pk), "stop")


@pytest.mark.db_sensitive
def test_a_deleted_starter_does_not_leave_an_unchecked_periodic_run(server, admin_http, superuser, collected):
    """Known (brief): when the user who started a run is deleted, started_by becomes NULL and
    the claim checks the command and the arguments only, as for a run started by code.

    A periodic task started by a user who is then deleted goes on running at
    every slot with nobody's rights checked; so does a task whose run_task
    holder was deleted instead of deactivated. A run started from the admin
    should keep needing a person with the rights.
    """
    group_member = make_staff("member", "run_task", "view_task")
    member = login(server, "member")
    task = Task.objects.create(
        name="hourly",
        command=collected["tm_ok"],
        arguments="--lines 1",
        scheduling=timezone.now() + timedelta(days=1),
        repetition_period="hour",
        repetition_rate=1,
    )
    assert "is scheduled" in shown_messages(press(member, task, "start"))
    assert Task.objects.get(pk=task.pk).started_by_id == group_member.pk
    group_member.delete()
    try:
        report = fire_pending_run(server, task)
        assert (report.result, report.end_reason) == ("FAILED", "not allowed"), (
            report.result,
            report.end_reason,
            log_of(report),
        )
        assert report.end_kind == "not run"  # refused before the command started (issue 16)
    finally:
        press(admin_http, Task.objects.get(pk=task.pk), "stop")


# -- arguments ----------------------------------------------------------------------


def test_huge_arguments_do_not_tie_up_a_web_worker(server, collected):
    """A staff user who may add tasks posts ~100 KB of arguments: the check is quadratic in argparse.

    validate_arguments parses every token with the command's parser; for a
    long list of option-like tokens argparse takes seconds to minutes (32,000
    tokens: over 20 s in-process), in the web worker, per request, with the
    whole argv echoed back in the error message. Nothing bounds the length
    of the arguments field.
    """
    make_staff("editor", "add_task", "run_task", "view_task")
    editor = login(server, "editor")
    arguments = " ".join(["-x"] * 24000)
    started = time.monotonic()
    resp = add_form(editor, "huge", collected["tm_ok"], arguments)
    elapsed = time.monotonic() - started
    assert not Task.objects.filter(name="huge").exists()
    # A bound on work, not a wait: seconds where the unbounded parse takes
    # minutes; a slower machine scales it (TM_TEST_TIMEOUT_SCALE).
    refused_in = "the form took %.1f s to refuse %d bytes of arguments" % (elapsed, len(arguments))
    assert elapsed < scaled(3), refused_in
    assert len(resp.text) < 100_000, "the error echoed %d bytes" % len(resp.text)


# -- which commands are the project's, which are dangerous ---------------------------


#: Commands of django-extensions (the app whose shell_plus, reset_db, runserver_plus,
#: sqldsn, sqlcreate, dumpscript and print_settings the default list names) that
#: are as dangerous as those: run code, drop the schema, rewrite every password,
#: serve, write and delete project files, print a session's user.
DJANGO_EXTENSIONS_DANGEROUS = [
    "runscript",  # runs any module's run() from the project's scripts directories
    "reset_schema",  # DROP SCHEMA ... CASCADE
    "drop_test_database",
    "set_fake_passwords",  # sets every user's password to one value
    "set_fake_emails",
    "runprofileserver",  # a server, like runserver
    "delete_squashed_migrations",  # deletes migration files
    "create_command",  # generates code in the project
    "create_template_tags",
    "create_jobs",
    "runjob",
    "runjobs",
    "print_user_for_session",  # maps a session key to its user
    "sync_s3",
    "syncdata",  # like loaddata
]


def test_the_default_dangerous_list_covers_django_extensions(transactional_db):
    """The default list names 7 commands of django-extensions but leaves out the others as dangerous.

    With ``TASKMANAGER_ALLOWED_COMMANDS = ["django_extensions"]`` (the doc's
    way to want "a third-party app's commands"), collection activates all of
    these, with unlocked arguments, for anyone with run_task.
    """
    missing = [
        name for name in DJANGO_EXTENSIONS_DANGEROUS if not policy.is_dangerous("django_extensions", name)
    ]
    assert missing == []


@pytest.mark.parametrize(
    "installed_at",
    [
        # pex: wheels unpacked under ~/.pex/installed_wheels
        "/root/.pex/installed_wheels/0a1b/django_extensions-3.2.3-py3-none-any.whl/tm_fakeext",
        # pip install --target (Docker multi-stage builds, AWS Lambda layers)
        "/opt/python/tm_fakeext",
        # PEP 582 / PDM's __pypackages__
        "/srv/app/__pypackages__/3.12/lib/tm_fakeext",
    ],
)
def test_a_third_party_app_installed_outside_site_packages_is_not_the_projects(
    transactional_db, monkeypatch, installed_at
):
    """is_project_app is "anything not under a site-packages/dist-packages directory or the stdlib".

    Third-party apps installed by pip --target, pex, PDM's __pypackages__ or a
    Lambda layer are "the project's": their commands are collected active,
    with unlocked arguments, for anyone with run_task (only the named
    dangerous ones stay blocked).
    """
    from django.apps import apps

    config = apps.get_app_config("tm_fakeext")
    monkeypatch.setattr(config, "path", installed_at)
    policy.is_project_app.cache_clear()
    try:
        assert policy.is_project_app("tm_fakeext") is False
        assert policy.collected_active("tm_fakeext", "fakeext_report") is False
    finally:
        policy.is_project_app.cache_clear()


# -- editing a task whose command may not run ---------------------------------------


@pytest.mark.db_sensitive
def test_inactive_commands_arguments_are_not_parsed_for_an_editor(server, collected, tmp_path):
    """A task of an inactive command: its editor's arguments still go through the command's parser.

    TaskForm.clean checks the command's refusal only when the command field
    changes; keeping the task's command, an editor with run_task has
    arbitrary arguments parsed by the parser of a command a superuser
    switched off (importing its module, building its parser, running its
    type= callables), and saved on the task. The form should refuse to
    change the definition of a task whose command may not run.
    """
    from taskmanager.models import Command

    make_staff("editor", "change_task", "run_task", "view_task")
    editor = login(server, "editor")
    task = Task.objects.create(name="old", command=collected["tm_ok"], arguments="--lines 1")
    Command.objects.filter(pk=collected["tm_ok"].pk).update(active=False)
    resp = change_form(editor, task, arguments="--lines 2")
    assert Task.objects.get(pk=task.pk).arguments == "--lines 1", "saved: %s" % form_errors(resp)
    assert "not active" in form_errors(resp)
    # And the page says why no button is there.
    page = editor.get(TASKS + "%d/change/" % task.pk).text
    assert "not active" in page

"""Permissions and safety of the "Task manager" admin, through the real uWSGI server.

The URL lists are not written by hand: they are the patterns that each
ModelAdmin of the app registers (``admin.site._registry`` ->
``ModelAdmin.get_urls()``), with every path converter filled with the pk of a
real object, so a view added later is covered at once.
"""

import re

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import URLPattern, URLResolver

from taskmanager import audit, dbclock
from taskmanager.models import AuditEntry, Command, DjangoTaskResult, Report, Task, TaskCategory

from .support.adminclient import AdminClient, client_for
from .support.objects import add_log_lines, make_report, make_task

pytestmark = pytest.mark.django_db(transaction=True)

CONVERTER_RE = re.compile(r"<(?:\w+:)?(\w+)>")
BUTTONS = ("start", "stop", "run-now")


def registered_models():
    return [model for model in admin.site._registry if model._meta.app_label == "taskmanager"]


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def app_urls(objects) -> list[str]:
    """Every URL the app's ModelAdmins register, converters filled with a real object's pk."""
    urls = []
    for model in registered_models():
        model_admin = admin.site._registry[model]
        pk = objects[model].pk
        for route, _name in _routes(model_admin.get_urls()):
            route = CONVERTER_RE.sub(str(pk), route.lstrip("^").rstrip("$"))
            urls.append("/admin/%s/%s/%s" % (model._meta.app_label, model._meta.model_name, route))
    assert len(urls) >= 4 * len(registered_models())
    return sorted(set(urls))


@pytest.fixture
def objects(commands):
    category = TaskCategory.objects.create(name="perm-cat")
    task = make_task(commands, "perm-task", category=category)
    report = make_report(task, running=True, alive=False, result="OK")
    add_log_lines(report, ["hi"])
    entry = audit.record(audit.Action.EDIT, task, actor="someone", changes={"note": ["", "x"]})
    result = DjangoTaskResult.objects.create(
        backend="default",
        task_path="tests.testapp.djtasks.sleep",
        queue_name="default",
        status=DjangoTaskResult.Status.RUNNING,
        enqueued_at=dbclock.now(),
        report=report,
    )
    found = {
        Command: commands["tm_ok"],
        TaskCategory: category,
        Task: task,
        Report: report,
        AuditEntry: entry,
        DjangoTaskResult: result,
    }
    missing = set(registered_models()) - set(found)
    assert not missing, "add an object of %s to this fixture" % missing
    return found


def test_every_url_of_the_app_needs_the_login(server, objects):
    urls = app_urls(objects)
    # The enumeration sees the extra views too, not only Django's.
    for expected in (
        "/task/status/",
        "/task/%d/start/" % objects[Task].pk,
        "/report/%d/log/" % objects[Report].pk,
    ):
        assert any(url.endswith(expected) for url in urls), expected
    anonymous = AdminClient(server.url)
    for url in urls:
        resp = anonymous.get(url, follow=False)
        assert resp.status == 302, (url, resp.status)
        assert "/admin/login/?next=" in resp.url, (url, resp.url)
        resp = anonymous.post(url, {}, follow=False)
        assert resp.status == 302 and "/admin/login/" in resp.url, (url, resp.status)
    task = objects[Task]
    task.refresh_from_db()
    assert task.status == "IDLE" and Report.objects.filter(task=task).count() == 1


def test_staff_without_permissions_gets_403_everywhere(server, staff, objects):
    staff(username="nobody")
    client = client_for(server.url, "nobody")
    for url in app_urls(objects):
        resp = client.get(url)  # follows the admin's "<pk>/" redirect to the change page
        is_button = url.rstrip("/").rsplit("/", 1)[-1] in BUTTONS
        assert resp.status == (405 if is_button else 403), (url, resp.status)
        resp = client.post(url, {})
        assert resp.status == 403, (url, resp.status)
    for button in BUTTONS:
        assert client.post("/admin/taskmanager/task/%d/%s/" % (objects[Task].pk, button)).status == 403
    objects[Task].refresh_from_db()
    assert objects[Task].status == "IDLE"


def test_view_only_staff_sees_but_cannot_run(server, staff, objects):
    staff("view_task", "view_report", "view_command", "view_taskcategory", username="viewer")
    client = client_for(server.url, "viewer")
    task = objects[Task]
    listing = client.get("/admin/taskmanager/task/")
    assert listing.status == 200 and "perm-task" in listing.text
    assert 'name="action"' not in listing.text  # no bulk actions at all
    page = client.get("/admin/taskmanager/task/%d/change/" % task.pk)
    assert page.status == 200 and "perm-task" in page.text
    for button in BUTTONS:
        assert "/%s/" % button not in page.text, button
    assert "complete log with filters" in page.text
    assert client.get("/admin/taskmanager/report/%d/log/" % objects[Report].pk).status == 200
    assert client.get("/admin/taskmanager/task/status/?ids=%d" % task.pk).status == 200
    for button in BUTTONS:
        assert client.post("/admin/taskmanager/task/%d/%s/" % (task.pk, button)).status == 403
    resp = client.post(
        "/admin/taskmanager/task/",
        {"action": "start_tasks", "_selected_action": [task.pk], "index": "0"},
    )
    assert resp.status in (200, 403)
    task.refresh_from_db()
    assert (task.status, task.run_token) == ("IDLE", "")
    assert Report.objects.filter(task=task).count() == 1


def test_logs_need_view_report(server, staff, objects):
    staff("view_task", username="tasks-only")
    client = client_for(server.url, "tasks-only")
    page = client.get("/admin/taskmanager/task/%d/change/" % objects[Task].pk)
    assert page.status == 200
    assert "complete log with filters" not in page.text  # the reports inline is hidden
    assert client.get("/admin/taskmanager/report/%d/log/" % objects[Report].pk).status == 403


def test_run_permission_shows_buttons_and_actions(server, staff, objects):
    staff("view_task", "run_task", username="runner")
    client = client_for(server.url, "runner")
    task = objects[Task]
    page = client.get("/admin/taskmanager/task/%d/change/" % task.pk).text
    for button in BUTTONS:
        assert "/admin/taskmanager/task/%d/%s/" % (task.pk, button) in page
    listing = client.get("/admin/taskmanager/task/").text
    assert 'value="start_tasks"' in listing and 'value="stop_tasks"' in listing
    assert 'value="delete_selected"' not in listing
    resp = client.post("/admin/taskmanager/task/%d/start/" % task.pk)
    assert resp.status == 200 and "was started" in resp.text


def test_csrf_is_required_for_buttons(server, objects, superuser):
    client = client_for(server.url, "admin")
    resp = client.post("/admin/taskmanager/task/%d/start/" % objects[Task].pk, {}, csrf=False)
    assert resp.status == 403
    objects[Task].refresh_from_db()
    assert objects[Task].status == "IDLE"


# -- collect_commands never activates what the project did not choose ---------------


def collected():
    return {c.name: c.active for c in Command.objects.all()}


def test_collect_activates_only_the_projects_own_commands(transactional_db):
    from django.core.management import get_commands

    call_command("collect_commands", verbosity=0)
    found = collected()
    # Every command of Django itself, enumerated from the installed Django (a
    # command added by a later Django is covered at once), is added inactive.
    core = {name for name, app in get_commands().items() if app == "django.core" or app.startswith("django.")}
    assert {"shell", "check", "dumpdata", "diffsettings", "startapp"} <= core <= found.keys()
    assert not [name for name in core if found[name]]
    # The project's own app (tests/testapp, outside site-packages) is active;
    # of the app itself only collect_commands, never respool_tasks.
    assert found["tm_ok"] and found["collect_commands"]
    assert found["respool_tasks"] is False


def test_allowed_commands_setting_activates_listed_apps_and_commands(transactional_db, settings):
    settings.TASKMANAGER_ALLOWED_COMMANDS = ["django.core.check", "auth"]
    call_command("collect_commands", verbosity=0)
    found = collected()
    assert found["check"] is True and found["sendtestemail"] is False
    # auth's commands are listed as an app, but its two are password tools:
    # dangerous commands stay inactive unless the second setting names them.
    assert found["changepassword"] is False and found["createsuperuser"] is False
    assert Command.objects.get(name="check").locked_arguments is True  # a core command: locked


def test_dangerous_commands_need_the_second_setting(transactional_db, settings):
    settings.TASKMANAGER_ALLOWED_COMMANDS = ["django.core"]
    settings.TASKMANAGER_ALLOWED_DANGEROUS_COMMANDS = ["django.core.dumpdata"]
    call_command("collect_commands", verbosity=0)
    found = collected()
    assert found["dumpdata"] is True and found["check"] is True
    assert found["shell"] is False and found["diffsettings"] is False and found["loaddata"] is False


def test_legacy_unsafe_list_adds_to_the_dangerous_ones(transactional_db, settings):
    settings.TASKMANAGER_UNSAFE_COMMANDS = ["tm_raise"]
    settings.TASKMANAGER_ALLOW_UNSAFE_COMMANDS = True  # no effect any more
    call_command("collect_commands", verbosity=0)
    found = collected()
    assert found["tm_raise"] is False and found["tm_ok"] is True and found["shell"] is False


def test_active_blocked_command_is_reported_not_changed(transactional_db):
    from io import StringIO

    call_command("collect_commands", verbosity=0)
    Command.objects.filter(name="shell").update(active=True)
    out = StringIO()
    call_command("collect_commands", verbosity=1, stdout=out)
    assert "shell (django.core) is active but blocked by the settings" in out.getvalue()
    assert collected()["shell"] is True


def test_collect_leaves_out_the_alias_which_still_works(transactional_db):
    from io import StringIO

    call_command("collect_commands", "--excludecore", verbosity=0)
    assert "collect_commands" in collected() and "collectcommands" not in collected()
    # A row an earlier version recorded for the alias is deactivated, saying why;
    # the alias itself runs as collect_commands does.
    Command.objects.create(app_name="taskmanager", name="collectcommands", active=True)
    out = StringIO()
    call_command("collectcommands", "--excludecore", verbosity=2, stdout=out)
    assert collected()["collectcommands"] is False
    assert "Deactivated collectcommands (taskmanager): it is an alias of collect_commands" in out.getvalue()
    assert "Unchanged collect_commands (taskmanager)" in out.getvalue()


def test_excludecore_leaves_out_django_commands(transactional_db):
    call_command("collect_commands", "--excludecore", verbosity=0)
    found = collected()
    assert "tm_ok" in found and "collect_commands" in found
    assert "shell" not in found and "migrate" not in found

"""Where the django.tasks API comes from (``taskmanager.djangotasks.api``), and the checks about functions.

Django 6.0+ has ``django.tasks``; Django 5.2 gets the same API from the
``django-tasks`` backport (the test extra installs it, so this suite's
django.tasks tests run on 5.2 through it). Where neither is importable and
``TASKS`` names the backend, ``manage.py check`` fails with E020 saying what to
install. A fresh process hides both modules with an import hook, the way a
project without them would fail to import them. W016 (tasks of blocked
commands) leaves out the carrier tasks of functions, whose calls do run; collect_commands leaves
their internal command alone.
"""

import io
import json
import os
import subprocess
import sys

import django
from django.core.checks import run_checks
from django.core.management import call_command

from taskmanager.djangotasks import api
from taskmanager.djangotasks.run import carrier_task
from taskmanager.models import Command, Task

from .support.uwsgi_server import ROOT

# Run in a fresh interpreter: neither django.tasks nor django_tasks can be imported there.
WITHOUT_THE_API = """
import sys

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[:2] == ["django", "tasks"] or name.split(".")[0] == "django_tasks":
            raise ModuleNotFoundError("No module named %r" % name, name=name)

sys.meta_path.insert(0, Hide())
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "check"])
"""


def check_without_the_api(**settings) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TM_TEST_SETTINGS": json.dumps(settings),
    }
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_API], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_api_is_cores_on_django_6_and_the_backports_on_5_2():
    assert api.SOURCE == ("django.tasks" if django.VERSION >= (6, 0) else "django_tasks")
    assert api.MISSING is None
    assert api.InvalidTask.__module__.startswith(api.SOURCE)


def test_check_names_what_is_missing_when_tasks_names_the_backend_and_no_api_is_installed():
    done = check_without_the_api()
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "taskmanager.E020" in output and "'default'" in output
    assert "django-tasks backport" in output and "pip install django-tasks" in output


def test_no_error_without_the_api_when_tasks_names_another_backend():
    done = check_without_the_api(
        TASKS={"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "E020" not in output


def test_w016_names_tasks_of_blocked_commands_but_not_the_carriers_of_functions(db):
    # A function's carrier task (made at its first run) has the internal command
    # `_run_task_result`, which never runs as a task of its own (policy.blocked),
    # yet its function calls run: W016 must not tell the operator to delete it.
    carrier_task("tests.testapp.djtasks.add")
    respool = Command.objects.create(app_name="taskmanager", name="respool_tasks", active=True)
    Task.objects.create(name="respool from the admin", command=respool)

    [warning] = [m for m in run_checks(databases=["default"]) if m.id == "taskmanager.W016"]
    assert "'respool from the admin'" in warning.msg and warning.msg.startswith("1 task(s)")
    assert "django.tasks:" not in warning.msg and "_run_task_result" not in warning.msg


def test_collect_commands_leaves_the_internal_command_of_function_calls_active(db):
    # Django's get_commands() skips `_run_task_result` (a leading underscore): collection must not
    # take it for a command that disappeared and deactivate it (what a user saw run it again).
    command = carrier_task("tests.testapp.djtasks.add").command
    Command.objects.filter(pk=command.pk).update(active=True)
    out = io.StringIO()
    call_command("collect_commands", verbosity=2, stdout=out)
    command.refresh_from_db()
    assert command.active, out.getvalue()
    assert "Deactivated _run_task_result" not in out.getvalue()

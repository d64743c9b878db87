"""The system check of the django.tasks backend: E020, the API is missing where the backend is named.

``TASKS`` naming :class:`~taskmanager.djangotasks.backend.SpoolerTaskBackend`
is read by ``django.tasks`` (Django 6.0+) or by the ``django-tasks``
backport (Django 5.2). With neither installed nothing reads the setting: no
error is raised anywhere, ``@task`` cannot be imported, and nothing runs.
The check says so, and what to install. It reads settings only (no import of
the backend, which needs the API), so it is safe in every process.
"""

from django.conf import settings
from django.core import checks

from ..checks import TAG
from . import api

BACKEND_PREFIX = "taskmanager.djangotasks."


@checks.register(TAG)
def check_tasks_api(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """E020: an alias of ``TASKS`` names this app's backend, and neither API is installed."""
    if api.SOURCE:
        return []
    tasks = getattr(settings, "TASKS", None)
    aliases = [
        alias
        for alias, params in (tasks.items() if isinstance(tasks, dict) else ())
        if isinstance(params, dict) and str(params.get("BACKEND", "")).startswith(BACKEND_PREFIX)
    ]
    if not aliases:
        return []
    return [
        checks.Error(
            "TASKS names the task manager's django.tasks backend (%s), but %s Nothing reads TASKS: "
            "@task functions cannot be imported and no task result runs."
            % (", ".join(repr(a) for a in aliases), api.MISSING),
            hint="On Django 6.0 or later django.tasks is built in; on Django 5.2 install the backport "
            "(pip install django-tasks), or remove the backend from TASKS.",
            obj="TASKS",
            id="taskmanager.E020",
        )
    ]

"""Where the django.tasks API comes from: Django 6.0+'s ``django.tasks``, else the ``django-tasks`` backport.

Django 6.0 added ``django.tasks``; projects on Django 5.2 LTS get the same API
from the backport package ``django-tasks`` (module ``django_tasks``, the
reference implementation the core one was made from). The names this app
uses are the same in both but one: the backport's ``InvalidTaskError`` is
core's ``InvalidTask``, exported here under core's name.

Everything of the app that touches the API imports it from this module, so the
choice is made once. :data:`SOURCE` says which was found (``"django.tasks"``,
``"django_tasks"``, or ``None`` when neither is importable; then none of the
other names exists and :data:`MISSING` says what to install, for the system
check ``taskmanager.E020`` and ``collect_commands``). Core wins when both are
installed: on Django 6 the backport is a leftover, and a project's ``@task``
functions decorated with core's ``task`` must be run by core's classes.
"""

try:
    from django.tasks import TaskContext, TaskResult, TaskResultStatus, task, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    SOURCE = "django.tasks"
except ImportError:
    try:
        from django_tasks import TaskContext, TaskResult, TaskResultStatus, task, task_backends
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json

        SOURCE = "django_tasks"
    except ImportError:
        SOURCE = None

#: What to do when neither is installed (``None`` when one is).
MISSING = (
    None
    if SOURCE
    else (
        "neither django.tasks (Django 6.0+) nor the django-tasks backport (pip install "
        "django-tasks, for Django 5.2) is installed."
    )
)

__all__ = [
    "SOURCE",
    "MISSING",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]

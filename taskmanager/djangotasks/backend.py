"""The django.tasks backend: ``TASKS = {"default": {"BACKEND": "taskmanager.djangotasks.backend.SpoolerTaskBackend"}}``.

On Django 6.0+ it subclasses ``django.tasks``' ``BaseTaskBackend``; on Django
5.2 the ``django-tasks`` backport's (:mod:`.api` picks; the same ``TASKS``
setting). Nothing else of the package imports this module. What it promises:

* ``supports_defer`` (``run_after``), ``supports_priority`` (the claim takes
  the highest priority first), ``supports_get_result`` (from any process:
  the row is in the database), ``supports_async_task`` (an ``async def``
  function runs in the child through Django's ``Task.call``, which drives it
  with ``async_to_sync``: an event loop for the run, its log captured,
  Stop and the time-out as for any run).
* :meth:`enqueue` validates the task as the base class does (raising
  Django's ``InvalidTask``), stores the call as a :class:`DjangoTaskResult`
  row (arguments as JSON: what JSON cannot carry raises ``TypeError`` or
  ``ValueError`` before anything is stored), sends ``task_enqueued``, and
  once the row is committed (``transaction.on_commit``: an enqueue inside a
  transaction is seen by no spooler before the commit) writes a spool hint
  through ``TASKMANAGER_BACKEND``, and then wakes a busy spooler of this
  node (:mod:`.hints`: once per transaction). A process with no spooler to
  hint (a shell, a web-only node) stores the row only: the row is the queue
  of record, a hint only makes it run at once.
* :meth:`get_result` reads the row (``TaskResultDoesNotExist`` if none).

``OPTIONS``: ``TIMEOUT`` (seconds; default ``TASKMANAGER_DEFAULT_TIMEOUT``).
"""

from django.utils.module_loading import import_string

from .. import dbclock
from ..db import write_db
from ..models import DjangoTaskResult
from . import hints
from .api import (
    BaseTaskBackend,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)

#: The trigger of a spool hint of a django.tasks row (:mod:`.hints`).
HINT_TRIGGER = hints.HINT_TRIGGER


class SpoolerTaskBackend(BaseTaskBackend):
    """django.tasks on the uWSGI spooler: a row per call, a supervised child per run."""

    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True

    def __init__(self, alias, params):
        super().__init__(alias, params)
        self.timeout = self.options.get("TIMEOUT")

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        row = DjangoTaskResult(
            backend=self.alias,
            task_path=task.module_path,
            queue_name=task.queue_name,
            priority=task.priority,
            takes_context=task.takes_context,
            run_after=task.run_after,
            args=normalize_json(args),
            kwargs=normalize_json(kwargs),
            enqueued_at=dbclock.now(),
        )
        using = write_db()
        row.save(using=using, force_insert=True)
        result = to_task_result(row, task)
        task_enqueued.send(type(self), task_result=result)
        hints.after_commit(row.pk, row.run_after, using)
        return result

    def get_result(self, result_id):
        row = DjangoTaskResult.objects.using(write_db()).filter(pk=str(result_id)).first()
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        return to_task_result(row)


def to_task_result(row: DjangoTaskResult, task=None) -> TaskResult:
    """The ``TaskResult`` of a row; ``task`` the ``Task`` it was enqueued as (else imported by its path)."""
    if task is None:
        task = import_string(row.task_path).using(
            priority=row.priority, queue_name=row.queue_name, backend=row.backend, run_after=row.run_after
        )
    result = TaskResult(
        task=task,
        id=row.pk,
        status=TaskResultStatus(row.status),
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_attempted_at=row.last_attempted_at,
        args=row.args,
        kwargs=row.kwargs,
        backend=row.backend,
        errors=[TaskError(**error) for error in row.errors],
        worker_ids=list(row.worker_ids),
    )
    if row.status == DjangoTaskResult.Status.SUCCESSFUL:
        object.__setattr__(result, "_return_value", row.return_value)
    return result

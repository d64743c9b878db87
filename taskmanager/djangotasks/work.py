"""Inside a run's child: call the claimed row's function and store its result (``_run_task_result``).

The child runs the internal command ``_run_task_result <id>``
(:mod:`taskmanager.management.commands._run_task_result`), which calls
:func:`run_result`. It refuses a row that is not RUNNING for this very run
(the report's pk leads the run's ``TASKMANAGER_RUN`` marker): started any
other way (a carrier task started by hand) it runs nothing. It sends
``task_started``, calls the function (with a ``TaskContext`` first when
the task takes one), stores the return value as JSON and SUCCESSFUL, or the
exception (class path and traceback) and FAILED (a return value that JSON
or the database cannot store counts as an exception), by a conditional UPDATE
that only a row still RUNNING for this run takes, sends ``task_finished``,
and raises the function's exception again: the run's log shows it and the
report ends as a command's that raised. What the function logs is captured
with its levels, as a command's records are.
"""

import os
import traceback

from django.core.management.base import CommandError

from .. import dbclock, exceptions, processes
from ..models import DjangoTaskResult
from . import api

if api.SOURCE:
    # Imported with this module, hence in the fork server that prepares
    # ``_run_task_result`` (runner/forkserver_main.py), not in each run's child.
    from . import backend
from .failure import send_finished_failed


def claimed_row(result_id: str) -> tuple[DjangoTaskResult, int]:
    """The row RUNNING for this run and the run's report pk; CommandError when there is none."""
    report_id = os.environ.get(processes.RUN_ENV, "").partition(":")[0]
    row = None
    if report_id.isdigit():
        row = DjangoTaskResult.objects.filter(
            pk=result_id, status=DjangoTaskResult.Status.RUNNING, report_id=int(report_id)
        ).first()
    if row is None:
        raise CommandError("Task result %s is not claimed for this run: nothing was run." % result_id)
    return row, int(report_id)


def run_result(result_id: str) -> None:
    """Run the function of the claimed row ``result_id`` and store its outcome (see the module's docstring)."""
    row, report_id = claimed_row(result_id)
    # Names from the API looked up here: it exists only where django.tasks or its
    # backport is installed, which is where such rows are made.
    TaskContext, TaskError, TaskResultStatus = api.TaskContext, api.TaskError, api.TaskResultStatus
    normalize_json, task_finished, task_started = api.normalize_json, api.task_finished, api.task_started
    to_task_result = backend.to_task_result

    result = sender = None
    try:
        result = to_task_result(row)  # imports the function's module
        sender = type(result.task.get_backend())
        task_started.send(sender, task_result=result)
        task = result.task
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            value = task.call(*result.args, **result.kwargs)
        try:
            value = normalize_json(value)
        except (TypeError, ValueError) as exc:  # "Unsupported type: <class ...>" names no culprit
            raise type(exc)(
                "The return value of %s cannot be stored as JSON (%s): return dicts, lists, strings, "
                "numbers, booleans or None." % (row.task_path, exc)
            ) from exc
        # Stored in the try: a value JSON or the database refuses (an int past
        # Python's digit limit, a NUL in PostgreSQL's jsonb) ends the result
        # FAILED with that error, not as a run that ended before returning.
        finished = store(row, report_id, DjangoTaskResult.Status.SUCCESSFUL, return_value=value)
    except BaseException as exc:
        error = {
            "exception_class_path": exceptions.class_path(type(exc)),
            "traceback": "".join(traceback.format_exception(exc)),
        }
        finished = store(row, report_id, DjangoTaskResult.Status.FAILED, errors=[*row.errors, error])
        if result is not None:
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            object.__setattr__(result, "finished_at", finished)
            result.errors.append(TaskError(**error))
            send_finished_failed(task_finished, sender, result, exc)
        raise
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "finished_at", finished)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(sender, task_result=result)


def store(row: DjangoTaskResult, report_id: int, status: str, **fields):
    """Write the row's end if it is still RUNNING for this run; return the end's time (database clock)."""
    finished = dbclock.now()
    DjangoTaskResult.objects.filter(
        pk=row.pk, status=DjangoTaskResult.Status.RUNNING, report_id=report_id
    ).update(status=status, finished_at=finished, **fields)
    return finished

"""What a run's child runs: a management command, or the ``@task`` function of a Task (issue 19).

A Command row of kind "function" (its name the function's dotted path) is
run by calling the function instead of ``call_command``: :class:`CommandName`
carries the kind to the child (through the fork server too), where
:func:`load_command` and :mod:`.child_main`'s ``run_command`` decide by it,
the only places that do; everything before and after is the same
(release, log capture, exit, reuse). The
function is imported while the claim commits, as a command's module is
(:func:`load_command`), and called with the run's
arguments (:func:`taskmanager.callargs.call_of`) through Django's
``Task.call``, which runs a coroutine function to its end too. A function
that takes a context gets a ``TaskContext`` whose ``task_result`` describes
this run: its id is ``taskmanager-report-<report pk>``, RUNNING, attempt 1,
the arguments of the run; it is not stored anywhere (``refresh()`` finds
nothing: the run's record is its report, not a django.tasks result).

The return value is one INFO line of the log ("Returned: ..."; its
``repr``, cut at :data:`MAX_RETURN_CHARS`). An exception ends the run as a
command's does: its traceback from the function's frame on, at ERROR, and
the run FAILED (crashed, with the exception's class).
"""

from __future__ import annotations

import os
import socket
import traceback
from typing import NamedTuple

from .. import callargs, logcapture, processes

#: Longest return value shown in the log, in characters.
MAX_RETURN_CHARS = 2000


class CommandName(NamedTuple):
    """What a run runs: its app, name and kind (``Command.app_name``, ``.name``, ``.kind``)."""

    app_name: str
    name: str
    kind: str = callargs.COMMAND

    @classmethod
    def of(cls, task) -> CommandName:
        """Return the command of ``task`` (a Task with its command loaded)."""
        return cls(task.command.app_name, task.command.name, task.command.kind)


def load_command(command: CommandName):
    """Return an instance of ``command`` (a function's ``Task``), or the exception importing or instantiating it raised."""
    try:
        if command.kind == callargs.FUNCTION:
            # Deferred: only a function run's child imports the django.tasks API (taskfunctions).
            from ..taskfunctions import load

            return load(command.name)
        # Deferred: Django's management package is only needed in the child.
        from django.core.management import load_command_class

        return load_command_class(command.app_name, command.name)
    except BaseException as exc:  # noqa: BLE001 - raised again by the run, in the run
        return exc


def run_function(task, argv: list[str], writer: logcapture.RecordWriter, exit_exception: int) -> int:
    """Call ``task`` (as :func:`load_command` returned it) with the run's ``argv``; return the exit code."""
    try:
        if isinstance(task, BaseException):
            raise task
        args, kwargs = callargs.call_of(argv)
        if task.takes_context:
            value = task.call(context(task, args, kwargs), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
    except SystemExit as exc:
        if exc.code is None or exc.code == 0:
            return 0
        writer.write(logcapture.ERROR, logcapture.STDERR, "SystemExit: %s" % (exc.code,))
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - reported, then the child exits
        writer.write(logcapture.ERROR, logcapture.STDERR, failure_text(exc, task))
        writer.write(0, logcapture.OUTCOME_STREAM, "exception: %s" % type(exc).__name__)
        return exit_exception
    writer.write(logcapture.INFO, logcapture.SYSTEM, "Returned: %s" % return_text(value))
    return 0


def return_text(value) -> str:
    """The return value as one line: its ``repr``, line breaks escaped, cut at MAX_RETURN_CHARS."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not fail a run that succeeded
        text = "<%s (repr failed: %s)>" % (type(value).__name__, type(exc).__name__)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= MAX_RETURN_CHARS else text[: MAX_RETURN_CHARS - 1] + "…"


def failure_text(exc: BaseException, task) -> str:
    """The traceback of the exception that ended the function, from the function's frame on (else the whole)."""
    tb = exc.__traceback__
    code = getattr(getattr(task, "func", None), "__code__", None)
    entry = tb
    while entry is not None:
        if entry.tb_frame.f_code is code:
            tb = entry
            break
        entry = entry.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def context(task, args: list, kwargs: dict):
    """The ``TaskContext`` of this run (see the module's docstring)."""
    # Deferred: only a function that takes a context needs these.
    from django.utils import timezone

    from ..djangotasks import api

    now = timezone.now()
    report = os.environ.get(processes.RUN_ENV, "").partition(":")[0]
    result = api.TaskResult(
        task=task,
        id="taskmanager-report-%s" % report,
        status=api.TaskResultStatus.RUNNING,
        enqueued_at=now,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=args,
        kwargs=kwargs,
        backend=task.backend,
        errors=[],
        worker_ids=[socket.gethostname()],
    )
    return api.TaskContext(task_result=result)

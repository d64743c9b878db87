"""What a spooler's fork server imports ahead (:func:`.forkserver_main.prepare`): read by the spooler before forking it.

The fork server never touches the database, so the spooler reads the lists
for it (a few queries, once per fork server):

* the active management commands (:func:`active_commands`), and the internal
  command of django.tasks runs, ``_run_task_result``, once any function has a
  carrier task (:mod:`taskmanager.djangotasks.run`): their modules imported and
  parsers built, a run's child does neither;
* the modules of the django.tasks functions (:func:`function_modules`): those
  run before (named by their carrier tasks, ``django.tasks: <path>``) and the
  active Command rows of kind function (issue 19). Importing one runs its
  ``@task`` decorators, which import ``django.tasks`` (or the backport) and
  this app's backend: a run's child then only looks the function up.

A module that fails to import there is left to the run's child, which
imports it again and reports the error in the run's log. The first run of a
function no fork server imported gets a new fork server
(:meth:`.forkserver.ForkServer.serving`, with :func:`function_module`).
"""

import logging

from django.db import DatabaseError

from ..models import Command, DjangoTaskResult, Task

logger = logging.getLogger("taskmanager.runner")


def function_module(task) -> str | None:
    """The module of the django.tasks function ``task`` carries (its name ends with its path), else None."""
    prefix = DjangoTaskResult.CARRIER_PREFIX
    if task is None or not task.name.startswith(prefix) or not task.is_carrier:
        return None
    return task.name[len(prefix) :].rpartition(".")[0] or None


def active_commands() -> list[tuple[str, str]]:
    """Return (app_name, name) of the active commands, for the fork server to import; [] on a DB error.

    With them ``_run_task_result``, the internal command of django.tasks runs,
    once a function has a carrier task (:mod:`taskmanager.djangotasks.run`).
    """
    try:
        commands = list(
            Command.objects.filter(active=True, kind=Command.Kind.COMMAND).values_list("app_name", "name")
        )
        if Task.objects.filter(name__startswith=DjangoTaskResult.CARRIER_PREFIX).exists():
            commands.append(("taskmanager", DjangoTaskResult.CARRIER_COMMAND))
        return commands
    except DatabaseError:
        logger.warning("Could not read the active commands: the fork server imports none", exc_info=True)
        return []


def function_modules() -> list[str]:
    """Return the modules of the django.tasks functions run here so far, for the fork server to import.

    A function's path is in its carrier task's name (``django.tasks: <path>``,
    kept whole up to 200 characters) and in the name of an active Command row
    of kind function (issue 19). [] on a DB error.
    """
    prefix = DjangoTaskResult.CARRIER_PREFIX
    try:
        paths = [
            name[len(prefix) :]
            for name in Task.objects.filter(name__startswith=prefix).values_list("name", flat=True)
        ]
        paths += Command.objects.filter(active=True, kind=Command.Kind.FUNCTION).values_list(
            "name", flat=True
        )
    except DatabaseError:
        logger.warning("Could not read the task functions: the fork server imports none", exc_info=True)
        return []
    return sorted({path.rpartition(".")[0] for path in paths if "." in path})

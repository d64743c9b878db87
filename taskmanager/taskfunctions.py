"""The ``@task`` functions of the installed apps, as Tasks of the admin run them (issue 19).

**Discovery** (:func:`discover`, used by ``collect_commands``): for each
installed app that has a ``tasks`` module (``<app>/tasks.py``, or a
``tasks`` package: its ``__init__``), that module is imported and every
module-level name bound to a django.tasks ``Task`` defined there under that
name (its ``module_path`` is ``<app>.tasks.<name>``) is one function. A Task
imported into the module from elsewhere is left to the app that defines it;
functions in other modules are not found (import them into ``tasks``,
or enqueue them from code: the backend runs any function). Without the
django.tasks API (:mod:`.djangotasks.api`) nothing is discovered, and why
is said.

**Arguments** (:func:`validate`, the task form's check after the rights
check): the function is imported (its module's code runs, as a command's
module does when its arguments are checked) and the arguments are bound to
its signature; the function is never called.
"""

from __future__ import annotations

import inspect
from importlib import import_module

from django.apps import apps
from django.utils.module_loading import import_string, module_has_submodule
from django.utils.translation import gettext as _

from . import callargs
from .arguments import ArgumentsError, command_usage, load_failure
from .djangotasks import api

#: The module of an app where its functions are found.
MODULE = "tasks"


class Discovery:
    """What :func:`discover` found: ``found`` (app name, path) pairs, ``failed`` apps and why, ``missing``."""

    def __init__(self, missing: str = ""):
        self.found: set[tuple[str, str]] = set()
        self.failed: dict[str, str] = {}
        #: Why no function can be discovered at all ("" when the django.tasks API is here).
        self.missing = missing

    def checked(self, app_name: str) -> bool:
        """Whether the functions of ``app_name`` were looked for (its rows may be deactivated)."""
        return not self.missing and app_name not in self.failed


def discover() -> Discovery:
    """Find the functions of the installed apps' ``tasks`` modules (see the module's docstring)."""
    if api.SOURCE is None:
        return Discovery(api.MISSING.rstrip("."))
    result = Discovery()
    for config in apps.get_app_configs():
        if not module_has_submodule(config.module, MODULE):
            continue
        name = "%s.%s" % (config.name, MODULE)
        try:
            module = import_module(name)
        except Exception as error:  # noqa: BLE001 - said by collect_commands; its functions stay as they are
            result.failed[config.name] = "%s: %s" % (type(error).__name__, error)
            continue
        for attribute, value in vars(module).items():
            if isinstance(value, api.Task) and value.module_path == "%s.%s" % (name, attribute):
                result.found.add((config.name, value.module_path))
    return result


def load(path: str):
    """Return the django.tasks ``Task`` at ``path``; raise `ArgumentsError` saying why there is none."""
    if api.SOURCE is None:
        raise ArgumentsError(
            _("The function %(function)s cannot run here: %(reason)s.")
            % {"function": path, "reason": api.MISSING.rstrip(".")}
        )
    try:
        task = import_string(path)
    except Exception as error:  # noqa: BLE001 - ImportError, or an error of the module's code
        raise ArgumentsError(
            _("The function %(function)s can no longer be loaded: %(error)s")
            % {"function": path, "error": load_failure(error)}
        ) from error
    if not isinstance(task, api.Task):
        raise ArgumentsError(_("%(function)s is no longer a @task function.") % {"function": path})
    return task


def validate(path: str, argv: list[str]) -> None:
    """Check a function run's ``argv`` (:func:`callargs.run_argv`) against its signature; call nothing."""
    task = load(path)
    args, kwargs = callargs.call_of(argv)
    callargs.check_call(inspect.signature(task.func), args, kwargs, path, task.takes_context)


def describe(path: str) -> str:
    """The function's signature and docstring, for the command's page; why not, when it cannot be loaded."""
    try:
        task = load(path)
    except ArgumentsError as error:
        return str(error)
    text = "%s%s" % (path, inspect.signature(task.func))
    if task.takes_context:
        text += "\n\n" + _("It takes a context: it gets one first, before the arguments of the task.")
    doc = inspect.getdoc(task.func)
    return text + ("\n\n" + doc if doc else "")


def usage(command) -> str:
    """What the pages show of how to call ``command`` (a Command row): a command's help, a function's signature."""
    if command.kind != callargs.FUNCTION:
        return command_usage(command.app_name, command.name)
    return "%s\n\n%s" % (
        describe(command.name),
        _('The arguments of its tasks: JSON, {"args": [...], "kwargs": {...}} (both optional).'),
    )

"""Commands' argument parsers built ahead of their runs, and a run that uses one (issue 17).

Django's ``call_command`` builds the command's argument parser at every call
(``argparse``, ``gettext`` look-ups of its help texts, in a freshly forked
child copy-on-write faults on everything it touches): about half of a
no-op run's child. Here a command's parser is built once per process:

* by a spooler's **fork server**, for each active command, before it
  freezes its heap (:func:`prebuild`, from :func:`.forkserver_main.prepare`):
  every child forked from it finds the parser ready;
* by a **reused child** (``RUNS_PER_CHILD`` above 1), at its first run,
  with that run's own instance of the command (:func:`call`): its next runs
  reuse it.

A run then does what ``call_command(command, *argv, stdout=..., stderr=...,
no_color=False, force_color=False)`` does, minus building the parser
(:func:`call`): the same parse of ``argv`` (a bad argument raises the same
``CommandError``), the same option defaults, ``skip_checks`` True, the same
``execute()``. The run's command instance is still a fresh one, made in the
child. A parser is kept for later runs only if nothing of it belongs to one
run (:func:`_reusable`); otherwise, or if building it raised, a run calls
``call_command`` as before:

* building it neither queried nor opened a database connection (choices
  read from a table must be read at each run; the fork server holds no
  connection), nor changed or kept a reference to the instance that built it
  (``add_arguments`` storing state on ``self``, a ``type=self.method``);
* the parser is Django's ``CommandParser``, its actions ``argparse``'s own
  classes, and its defaults and constants can be deep-copied: a run gets a
  copy of a mutable default (``action="append", default=[]``), as it gets a
  new one from a parser built for it, so a run that changes its options
  leaves nothing to the next run of a reused child;
* in a fork server, the command class keeps ``BaseCommand.__init__``
  (the fork server makes an instance to build the parser: a constructor of
  the command's own would run in the fork server instead of the child).
"""

import copy
import sys
from contextlib import ExitStack

from django.db import connections

#: CommandName -> its parser kept for the runs (a _Prebuilt), or None: each run calls call_command.
_prebuilt: dict = {}

#: Values immutable enough to be shared by runs (everything else is deep-copied per run).
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes)


class _Prebuilt:
    """A command class's parser, and the defaults a run gets a copy of."""

    def __init__(self, cls, parser, shared: dict):
        self.cls = cls
        self.parser = parser
        #: id -> object, for each mutable default or constant of the parser.
        self.shared = shared


def prebuild(name) -> None:
    """In a fork server: build the parser of the command ``name`` for its children (see module doc)."""
    # Deferred: Django's management package is only needed where commands run.
    from django.core.management import load_command_class
    from django.core.management.base import BaseCommand

    _prebuilt[name] = None
    try:
        builder = load_command_class(name.app_name, name.name)
        if type(builder).__init__ is not BaseCommand.__init__:
            return
        opened = _open_connections()
        with _queries() as queried:
            parser, reusable = _build(builder)
        if _open_connections() - opened:
            # The fork server must hold no connection (nor SQLite state) of its own.
            connections.close_all()
            return
        if reusable and not queried:
            _prebuilt[name] = _Prebuilt(type(builder), parser, _shared(parser))
    except BaseException:  # noqa: BLE001 - only a speed-up: the runs call call_command
        _prebuilt[name] = None


def call(name, command, argv: list[str], stdout, stderr, reuse: bool = False):
    """Run ``command`` (an instance of the command ``name``) with ``argv`` as ``call_command`` would.

    With ``reuse`` (a reused child), the first run builds the parser with
    ``command`` and keeps it for the next runs if it can serve them.
    """
    # Deferred: Django's management package is only needed in the child.
    from django.core.management import call_command

    options = {"stdout": stdout, "stderr": stderr, "no_color": False, "force_color": False}
    prebuilt = _prebuilt.get(name)
    if prebuilt is not None and type(command) is prebuilt.cls:
        return _execute(command, prebuilt.parser, argv, options, prebuilt.shared)
    if reuse and name not in _prebuilt:
        _prebuilt[name] = None
        try:
            with _queries() as queried:
                parser, reusable = _build(command)
        except Exception:  # noqa: BLE001 - call_command raises it again, as it would have
            parser = None
        if parser is not None:
            shared = _shared(parser) if reusable else {}
            if reusable and not queried:
                _prebuilt[name] = _Prebuilt(type(command), parser, shared)
            # This run too gets copies: what it changes must not reach the parser's defaults.
            return _execute(command, parser, argv, options, shared)
    return call_command(command, *argv, **options)


def _execute(command, parser, argv, options: dict, shared: dict):
    """The part of ``call_command`` after building the parser, for the options :func:`call` passes."""
    args = []
    for arg in argv:
        if isinstance(arg, (list, tuple)):
            args += map(str, arg)
        else:
            args.append(str(arg))
    defaults = dict(parser.parse_args(args=args)._get_kwargs(), **options)
    for key, value in defaults.items():
        if shared.get(id(value)) is value:
            defaults[key] = copy.deepcopy(value)
    positional = defaults.pop("args", ())
    defaults["skip_checks"] = True
    return command.execute(*positional, **defaults)


def _build(command):
    """Build ``command``'s parser as ``call_command`` does; return it and whether later runs may use it.

    None instead of a parser: ``call_command`` would treat :func:`call`'s
    options otherwise than :func:`_execute` does (an option of the command
    named like one of them); it is left to do so.
    """
    # Deferred: Django's management package is only needed where commands run.
    from django.core.management.base import CommandParser

    state = dict(vars(command))
    refs = sys.getrefcount(command)
    parser = command.create_parser("", type(command).__module__.split(".")[-1])
    bound = sys.getrefcount(command) != refs or _changed(state, vars(command))
    parsers = list(_parsers(parser))
    actions = [action for p in parsers for action in p._actions]
    if not _plain_options(parser, actions, command):
        return None, False
    reusable = (
        not bound
        and all(type(p) is CommandParser for p in parsers)
        and all(type(action).__module__ == "argparse" for action in actions)
    )
    if reusable:
        try:
            copy.deepcopy(list(_shared(parser).values()))
        except Exception:  # noqa: BLE001 - a default that cannot be copied: not shared either
            reusable = False
    return parser, reusable


def _plain_options(parser, actions, command) -> bool:
    """Whether ``call_command`` passes call()'s options straight to ``execute()`` (no parsing, no TypeError)."""
    keys = ("stdout", "stderr", "no_color", "force_color")
    mapping = {
        min(a.option_strings).lstrip("-").replace("-", "_"): a.dest
        for a in parser._actions
        if a.option_strings
    }
    if any(mapping.get(key, key) != key for key in keys):
        return False
    required = {a for g in parser._mutually_exclusive_groups for a in g._group_actions if g.required}
    if any(a.dest in keys and (a.required or a in required) for a in actions):
        return False
    valid = {a.dest for a in actions} | set(command.base_stealth_options) | set(command.stealth_options)
    return set(keys) <= valid | set(mapping)


def _parsers(parser):
    """``parser`` and its subcommands' parsers, recursively."""
    yield parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for sub in action.choices.values():
                yield from _parsers(sub)


def _shared(parser) -> dict:
    """id -> object of each mutable default or constant of ``parser`` (and of its subcommands)."""
    found = {}
    for p in _parsers(parser):
        values = list(p._defaults.values())
        for action in p._actions:
            values += [action.default, action.const]
        for value in values:
            if not isinstance(value, _IMMUTABLE):
                found[id(value)] = value
    return found


def _changed(before: dict, after: dict) -> bool:
    return before.keys() != after.keys() or any(after[k] is not v for k, v in before.items())


def _open_connections() -> set:
    return {conn.alias for conn in connections.all(initialized_only=True) if conn.connection is not None}


class _queries:
    """Context manager: a list that holds True once a query ran on any database meanwhile."""

    def __enter__(self) -> list:
        self.seen: list = []
        self.stack = ExitStack()
        for conn in connections.all():
            self.stack.enter_context(conn.execute_wrapper(self._note))
        return self.seen

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def _note(self, execute, sql, params, many, context):
        self.seen.append(True)
        return execute(sql, params, many, context)

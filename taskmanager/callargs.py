"""The arguments of a task, by the kind of what it runs: a management command's, or a ``@task`` function's.

A task's ``arguments`` text is split into an ``argv`` (a list of strings)
once, here, and everything after (the rights' comparison with approved
strings, the claim, the fork server, the child's release) carries that
``argv`` unchanged, whatever the kind:

* a **command**'s text is the comma-and-space syntax of :mod:`.arguments`,
  its argv what ``call_command`` gets;
* a **function**'s text is one JSON object, ``{"args": [...], "kwargs":
  {...}}`` (both keys optional; an empty text is no argument at all; no
  other key, so that a typo is refused rather than ignored), and its argv is
  one string: the same object in a canonical JSON form (keys sorted, no
  spaces). Two texts that give the same call give the same argv, so a
  superuser's approved string matches however it is spaced or ordered
  (locked arguments, :mod:`.policy`).

Two JSON values parse but cannot be carried: lists and objects nested
deeper than :data:`MAX_DEPTH` (the json decoder and encoder, and the checks
after them, recurse: a few thousand brackets, 6 kB, raise RecursionError,
which was a 500 of the admin), and a lone surrogate (``"\\ud800"``, valid
JSON but no Unicode text: the call shown on the task's page and stored as
its report's command line cannot be encoded, by the response nor by the
database). Both are refused here, so every path that reads a task's
arguments (the form, the page, the approved strings, the claim) says why.

A function's arguments are checked against its signature without calling
it (:func:`check_call`: ``inspect.Signature.bind``, a context in first place
for a function that takes one).
"""

from __future__ import annotations

import inspect
import json

from django.utils.translation import gettext as _

from .arguments import ArgumentsError, check_size, command_line, parse_arguments

#: ``Command.kind`` of a management command and of a ``@task`` function.
COMMAND = "command"
FUNCTION = "function"
#: The keys a function's arguments object may have.
KEYS = ("args", "kwargs")
#: How deep the lists and objects of a function's arguments may nest (see the module's docstring).
MAX_DEPTH = 100


def parse_call(text: str | None) -> tuple[list, dict]:
    """Return ``(args, kwargs)`` of a function's arguments text; raise `ArgumentsError` saying what is wrong."""
    check_size(text, [])
    if not (text or "").strip():
        return [], {}
    try:
        value = json.loads(text)
    except RecursionError:  # not a ValueError: nested beyond what the decoder's recursion allows
        raise _too_deep() from None
    except ValueError as error:
        raise ArgumentsError(
            _(
                'The arguments of a function are JSON: %(error)s. Write {"args": [...], "kwargs": {...}} '
                "(both optional), or leave them empty."
            )
            % {"error": error}
        ) from None
    if not isinstance(value, dict):
        raise ArgumentsError(
            _(
                'The arguments of a function are one JSON object, {"args": [...], "kwargs": {...}} '
                "(both optional), not %(kind)s."
            )
            % {"kind": type(value).__name__}
        )
    _check_carried(value)
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ArgumentsError(
            _('Unknown key(s) %(keys)s: the arguments of a function have "args" and "kwargs" only.')
            % {"keys": ", ".join(json.dumps(key) for key in unknown)}
        )
    args, kwargs = value.get("args", []), value.get("kwargs", {})
    if not isinstance(args, list):
        raise ArgumentsError(_('"args" must be a JSON list of the positional arguments.'))
    if not isinstance(kwargs, dict):
        raise ArgumentsError(_('"kwargs" must be a JSON object of the keyword arguments.'))
    return args, kwargs


def _too_deep() -> ArgumentsError:
    return ArgumentsError(
        _("The arguments of a function are nested more than %(max)d levels deep (lists and objects).")
        % {"max": MAX_DEPTH}
    )


def _check_carried(value) -> None:
    """Raise `ArgumentsError` when ``value`` (parsed JSON) nests too deep or holds a lone surrogate.

    Walked with a stack, not recursively: the point is to refuse what recursion cannot take.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ArgumentsError(
                    _(
                        "The arguments of a function hold a lone surrogate (%(escape)s): valid JSON, "
                        "but no Unicode text."
                    )
                    % {"escape": json.dumps(error.object[error.start : error.end])}
                ) from None
        elif isinstance(item, (list, dict)):
            if depth > MAX_DEPTH:
                raise _too_deep()
            items = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in items)


def canonical(args: list, kwargs: dict) -> str:
    """The one argv string of a function call: its arguments object as canonical JSON."""
    return json.dumps(
        {"args": args, "kwargs": kwargs}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def run_argv(kind: str, text: str | None) -> list[str]:
    """The argv of a run of ``kind`` with the arguments ``text``; raise `ArgumentsError` when it has none."""
    if kind == FUNCTION:
        return [canonical(*parse_call(text))]
    return parse_arguments(text)


def argv_of(command, text: str | None) -> list[str]:
    """:func:`run_argv` for ``command`` (a Command row, or anything with its ``kind``)."""
    return run_argv(getattr(command, "kind", COMMAND), text)


def call_of(argv: list[str]) -> tuple[list, dict]:
    """The ``(args, kwargs)`` of a function run's argv (as :func:`run_argv` made it)."""
    if not argv:
        return [], {}
    value = json.loads(argv[0])
    return value.get("args", []), value.get("kwargs", {})


def run_line(command, argv: list[str]) -> str:
    """What a run runs, shown in a report and on the task's page.

    A command's shell-style line (``manage.py name args``), a function's call
    (``path(1, "x", b=2)``, the values as JSON).
    """
    if getattr(command, "kind", COMMAND) != FUNCTION:
        return command_line(command.name, argv)
    args, kwargs = call_of(argv)
    shown = [json.dumps(value, ensure_ascii=False) for value in args]
    shown += ["%s=%s" % (key, json.dumps(value, ensure_ascii=False)) for key, value in kwargs.items()]
    return "%s(%s)" % (command.name, ", ".join(shown))


def check_call(
    signature: inspect.Signature, args: list, kwargs: dict, name: str, takes_context=False
) -> None:
    """Raise `ArgumentsError` when ``args`` and ``kwargs`` do not fit ``signature`` (nothing is called).

    A function that takes a context gets it first: the arguments bind after it.
    """
    try:
        signature.bind(*([None] if takes_context else []), *args, **kwargs)
    except TypeError as error:
        raise ArgumentsError(
            _("These arguments do not fit %(function)s%(signature)s: %(error)s.")
            % {"function": name, "signature": signature, "error": error}
        ) from None

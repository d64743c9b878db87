"""Parse, format and validate the arguments of a task.

Staff users type a task's arguments in the admin as a single line of text.
This module turns that text into the ``argv`` list passed to
``call_command(command, *argv)``, turns an ``argv`` back into text, previews the
resulting command line and checks ``argv`` against the command's real
``argparse`` parser without running the command.

The argument syntax
-------------------

* Arguments are separated by commas; the values of one argument are separated
  by blanks (spaces, tabs, newlines).  Commas and blanks are equivalent
  separators: both only split tokens.  The guide's example::

      -f, --secondarg param1 param2, --thirdarg=pippo, --thirdarg

  gives ``["-f", "--secondarg", "param1", "param2", "--thirdarg=pippo",
  "--thirdarg"]``.
* ``--option=value`` stays a single token, exactly as typed.
* A repeated option is kept each time it appears.
* Runs of separators, and separators at either end, create no empty arguments:
  ``" , -f ,, "`` gives ``["-f"]``.
* Values containing blanks, commas or quotes are quoted, shell-like, with
  single (``'``) or double (``"``) quotes: ``--name "a b, c"`` gives
  ``["--name", "a b, c"]``.  Quoted and unquoted pieces written next to each
  other join into one token: ``--name="a b"`` gives ``["--name=a b"]`` and
  ``'it'"'"'s'`` gives ``["it's"]``.
* An explicitly quoted empty string (``""`` or ``''``) standing alone is kept
  as an empty argument.
* A quote that is opened but never closed is an error (`ArgumentsError`).
* ``#`` is an ordinary character (it does not start a comment).
* Only ASCII blanks (space, tab, CR, LF) and the comma separate tokens; other
  Unicode characters, including non-breaking spaces, are ordinary characters.

Backslashes
^^^^^^^^^^^

The backslash is an **ordinary character everywhere**: it escapes nothing,
neither outside quotes nor inside single or double quotes.  ``C:\\temp``,
``"C:\\my dir"`` and ``\\d+`` are kept exactly as typed.  This keeps Windows
paths and regular expressions intact and matches the guide's plain
comma-and-space syntax, which has no escapes.  The consequence is that quoting
is the only way to protect a special character:

* inside single quotes everything is literal except ``'``;
* inside double quotes everything is literal except ``"``;
* a value containing both kinds of quote is written as adjacent quoted pieces,
  e.g. ``'say "it'"'"'s"'`` gives ``say "it's"``.  `format_arguments` does
  this automatically.

(This differs from a POSIX shell, where ``\\`` escapes the next character
outside quotes and ``\\"``/``\\\\`` inside double quotes.)

Implementation: a `shlex.shlex` in POSIX mode with ``whitespace_split=True``,
``","`` added to the whitespace characters, no comment characters and no escape
characters.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex

from django.utils.translation import gettext as _

__all__ = [
    "ArgumentsError",
    "command_line",
    "command_usage",
    "format_arguments",
    "parse_arguments",
    "validate_arguments",
]

#: Characters separating arguments (and the values of one argument).
SEPARATORS = " \t\r\n,"
#: Characters that open a quoted section.
QUOTES = "'\""
#: Longest excerpt of command output quoted in an error message.
_MAX_OUTPUT_IN_MESSAGE = 300


class ArgumentsError(ValueError):
    """Raised with a message a staff user can act on."""


def _lexer(text: str) -> shlex.shlex:
    """Return a lexer configured for the task argument syntax (see module docs)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.whitespace = SEPARATORS
    lexer.quotes = QUOTES
    lexer.commenters = ""
    lexer.escape = ""  # the backslash is an ordinary character
    return lexer


def parse_arguments(text: str | None) -> list[str]:
    """Split the arguments text of a task into an ``argv`` list of strings.

    Return ``[]`` for ``None``, ``""`` or text made only of separators.  See the
    module documentation for the syntax; for instance
    ``'-f, --secondarg param1 param2, --thirdarg=pippo, --thirdarg'`` gives
    ``['-f', '--secondarg', 'param1', 'param2', '--thirdarg=pippo', '--thirdarg']``.

    Raise `ArgumentsError` when a quote is opened but never closed.
    """
    if not text:
        return []
    lexer = _lexer(text)
    try:
        return list(lexer)
    except ValueError as error:
        quote = lexer.state if lexer.state in QUOTES else None
        if quote is None:  # pragma: no cover - shlex only raises for quotes here
            raise ArgumentsError(_("The arguments cannot be split: %(error)s.") % {"error": error}) from error
        excerpt = lexer.token
        if len(excerpt) > 40:
            excerpt = excerpt[:37] + "..."
        if quote == '"':
            message = _(
                "Unbalanced quotes: a double quote (%(quote)s) is opened before %(excerpt)s but never "
                "closed. Close it, or wrap the value containing it in the other kind of quote."
            )
        else:
            message = _(
                "Unbalanced quotes: a single quote (%(quote)s) is opened before %(excerpt)s but never "
                "closed. Close it, or wrap the value containing it in the other kind of quote."
            )
        raise ArgumentsError(message % {"quote": quote, "excerpt": repr(excerpt)}) from error


def _quote(value: str) -> str:
    """Return ``value`` as one token of the argument syntax, quoted if needed."""
    if value and not any(char in SEPARATORS or char in QUOTES or char.isspace() for char in value):
        return value
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    # Both kinds of quote: single-quote everything, writing each ' as "'".
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _looks_like_option(value: str) -> bool:
    """Return whether ``value`` looks like an option (``-f``, ``--name=x``), not a value."""
    if len(value) < 2 or not value.startswith("-"):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False  # a negative number is a value


def format_arguments(argv: list[str]) -> str:
    """Return text in the task argument syntax that `parse_arguments` turns back into ``argv``.

    Quote the values that need it (empty, containing blanks, commas or quotes).
    For readability, an option starts a new comma-separated argument and the
    values following it are joined to it with spaces, e.g.
    ``['-f', '--secondarg', 'param1', 'param2']`` gives
    ``'-f, --secondarg param1 param2'``.  Values before the first option are
    separate arguments.  Return ``""`` for an empty ``argv``.
    """
    groups: list[list[str]] = []
    in_option = False
    for value in argv:
        if _looks_like_option(value):
            groups.append([_quote(value)])
            in_option = True
        elif in_option:
            groups[-1].append(_quote(value))
        else:
            groups.append([_quote(value)])
    return ", ".join(" ".join(group) for group in groups)


def command_line(command_name: str, argv: list[str]) -> str:
    """Return a shell-style preview of the command, e.g. ``"manage.py check --deploy"``.

    ``argv`` is quoted with `shlex.join`, so the preview shows exactly how each
    argument was split.
    """
    line = f"manage.py {shlex.quote(command_name)}"
    if argv:
        line += " " + shlex.join(argv)
    return line


class _CommandLoadError(Exception):
    """The command or its parser cannot be loaded; the message is the reason."""


def _load_parser(app_name: str, command_name: str) -> argparse.ArgumentParser:
    """Load the management command and return its argument parser, built as ``call_command`` does.

    Raise `_CommandLoadError` with the reason if the command cannot be
    imported or instantiated, or its parser cannot be built.  Call it with
    stdout/stderr redirected: importing a module may print.
    """
    from django.core.management import load_command_class

    try:
        command = load_command_class(app_name, command_name)
    except Exception as error:  # ImportError, AttributeError, errors in the module
        raise _CommandLoadError(f"{type(error).__name__}: {error}") from error
    try:
        parser = command.create_parser("manage.py", command_name)
    except Exception as error:
        raise _CommandLoadError(
            _("its arguments parser cannot be built: %(error)s")
            % {"error": "%s: %s" % (type(error).__name__, error)}
        ) from error
    if hasattr(parser, "color"):  # Python >= 3.14: never emit ANSI colour codes
        parser.color = False
    return parser


def _exiting_option(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[str, str] | None:
    """Return ``(typed option, kind)`` for the first help/version option in ``argv``.

    ``kind`` is ``"help"`` or ``"version"``.  Abbreviated long options
    (``--hel``) are resolved like argparse does.  Return ``None`` if there is
    none.
    """
    kinds: dict[str, str] = {}
    all_options: list[str] = []
    help_class = getattr(argparse, "_HelpAction", ())
    version_class = getattr(argparse, "_VersionAction", ())
    for action in parser._actions:  # Django's call_command relies on it too
        all_options.extend(action.option_strings)
        if isinstance(action, help_class):
            kinds.update(dict.fromkeys(action.option_strings, "help"))
        elif isinstance(action, version_class):
            kinds.update(dict.fromkeys(action.option_strings, "version"))
    for token in argv:
        if token == "--":
            break
        if not token or token[0] not in parser.prefix_chars:
            continue
        option = token.split("=", 1)[0]
        if option not in all_options and len(option) > 2:
            if option[1] in parser.prefix_chars:  # --hel, abbreviation of --help
                matches = [
                    name
                    for name in all_options
                    if len(name) > 1 and name[1] in parser.prefix_chars and name.startswith(option)
                ]
                if parser.allow_abbrev and len(matches) == 1:
                    option = matches[0]
            else:  # short flags written together, e.g. -hq
                option = option[:2]
        if option in kinds:
            return token, kinds[option]
    return None


def validate_arguments(app_name: str, command_name: str, argv: list[str]) -> None:
    """Check ``argv`` against the real argument parser of a management command.

    Load the command with ``load_command_class(app_name, command_name)``, build
    its parser as ``call_command`` does and parse ``argv`` with it; the command
    itself is never run.  Accept exactly what ``call_command(command, *argv)``
    accepts at parsing time (values such as app labels are only checked when
    the command runs).

    Nothing is printed to the process's stdout/stderr: both are redirected
    while the command is loaded and parsed.  (The redirection swaps the
    process-wide ``sys.stdout``/``sys.stderr`` for that short time.)

    Raise `ArgumentsError` naming the problem when the command cannot be
    loaded, an option is unknown, a required argument is missing, a value has
    the wrong type or is not an allowed choice, or ``argv`` asks for the
    help or version (which would print and exit instead of running).
    """
    from django.core.management.base import CommandError

    argv = [str(value) for value in argv]  # as call_command does
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            parser = _load_parser(app_name, command_name)
        except _CommandLoadError as error:
            raise ArgumentsError(
                _(
                    "The command %(command)s of %(app)s can no longer be loaded, "
                    "so its arguments cannot be checked: %(error)s"
                )
                % {"command": repr(command_name), "app": repr(app_name), "error": error}
            ) from error
        loading_output = len(output.getvalue())
        try:
            namespace = parser.parse_args(argv)
        except CommandError as error:
            message = str(error).removeprefix("Error: ")
            raise ArgumentsError(
                _("Invalid arguments for %(command)s: %(error)s")
                % {"command": repr(command_name), "error": message}
            ) from error
        except argparse.ArgumentError as error:
            raise ArgumentsError(
                _("Invalid arguments for %(command)s: %(error)s")
                % {"command": repr(command_name), "error": error}
            ) from error
        except SystemExit as error:
            exiting = _exiting_option(parser, argv)
            if exiting is not None:
                token, kind = exiting
                if kind == "help":
                    message = _(
                        "%(option)s is not allowed as a task argument: it only prints the command's "
                        "help and exits instead of running the command."
                    )
                else:
                    message = _(
                        "%(option)s is not allowed as a task argument: it only prints the version "
                        "number and exits instead of running the command."
                    )
                raise ArgumentsError(message % {"option": token}) from None
            printed = output.getvalue()[loading_output:].strip()
            if len(printed) > _MAX_OUTPUT_IN_MESSAGE:
                printed = printed[: _MAX_OUTPUT_IN_MESSAGE - 3] + "..."
            if printed:
                message = _(
                    "These arguments make %(command)s exit (status %(status)s) instead of running: %(output)s"
                )
            else:
                message = _("These arguments make %(command)s exit (status %(status)s) instead of running.")
            raise ArgumentsError(
                message % {"command": repr(command_name), "status": repr(error.code), "output": printed}
            ) from None
        except Exception as error:
            raise ArgumentsError(
                _("Invalid arguments for %(command)s: %(error)s")
                % {"command": repr(command_name), "error": "%s: %s" % (type(error).__name__, error)}
            ) from error
    _refuse_ignored_options(parser, namespace)


#: Options of every management command that only ``manage.py`` applies
#: (``BaseCommand.run_from_argv``); ``call_command``, which runs a task,
#: ignores them.
IGNORED_OPTIONS = ("--settings", "--pythonpath")


def _refuse_ignored_options(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> None:
    """Raise `ArgumentsError` when ``namespace`` sets one of `IGNORED_OPTIONS`.

    A task always runs with the project's settings and Python path: typing
    another one would be silently ignored (so it is no way to run other code
    either). The parsed values are checked, so abbreviations (``--sett``)
    are caught too.
    """
    for action in parser._actions:
        option = next((name for name in action.option_strings if name in IGNORED_OPTIONS), None)
        if option and getattr(namespace, action.dest, None) is not None:
            raise ArgumentsError(
                _(
                    "%(option)s is not allowed as a task argument: a task always runs with the "
                    "project's settings and Python path, so the option would be ignored."
                )
                % {"option": option}
            )


def command_usage(app_name: str, command_name: str) -> str:
    """Return the full help text of a management command, as ``manage.py help`` shows it.

    Never raise `ArgumentsError`: if the command cannot be loaded, return
    ``"This command can no longer be loaded: <reason>"`` instead.
    """
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            parser = _load_parser(app_name, command_name)
            return parser.format_help()
        except _CommandLoadError as error:
            return _("This command can no longer be loaded: %(error)s") % {"error": error}
        except Exception as error:  # noqa: BLE001 - a broken custom parser's format_help()
            return _("This command can no longer be loaded: %(error)s") % {
                "error": "%s: %s" % (type(error).__name__, error)
            }

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

Checking arguments without side effects
---------------------------------------

`validate_arguments` runs when a task form is saved in the admin, so it must
not act: a staff user who may edit a task must not be able to write files or
run code merely by saving it.  Parsing ``argv`` with the command's real parser
would do both, because argparse calls the ``type=`` callable of each value and
the ``__call__`` of each action while parsing.  So, before parsing, the freshly
built parser (and every sub-parser, recursively) is defused
(`_defuse_parser`):

* a ``type=`` that opens the file named by the value -- an `argparse.FileType`
  instance or one of `FILE_OPENING_FUNCTIONS` (also wrapped in
  `functools.partial`) -- is replaced by a path check that opens nothing: for
  reading, the file must exist and be readable; for writing (modes ``w``,
  ``a``, ``x``), its directory must exist and be writable and the path must not
  be a directory.  Nothing is created, truncated or opened, not even for a
  string default, which argparse converts with the same ``type=``.  ``-``
  (standard input/output for `argparse.FileType`) is refused when typed: a task
  has no terminal.  Relative paths are checked from the web server's current
  directory;
* an action whose class is not one of argparse's own (`_BUILTIN_ACTION_CLASSES`)
  still consumes the same number of values (``nargs`` is unchanged) but only
  stores them: its ``__call__`` never runs.  A custom help or version action
  only stops the parsing, so it is refused like ``--help``.

Other ``type=`` callables (``int``, a choice lookup, ...) still run: they
convert a value and are the command's documented contract.  The command itself
gets its real parser when it runs (``call_command`` builds a new one).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import functools
import io
import os
import shlex
from collections.abc import Callable

from django.utils.translation import gettext as _

__all__ = [
    "ArgumentsError",
    "check_size",
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


#: Longest argument text a task may be saved with, and most arguments. The
#: parsers of argparse take time growing with the square of the number of
#: option-like tokens: tens of thousands of them kept a web worker busy for
#: seconds on every save. One long value is fine (a 100 KB argument runs);
#: splitting 200 KB costs about 0.2 s.
MAX_TEXT = 200_000
MAX_ARGUMENTS = 500


def check_size(text: str | None, argv: list[str]) -> None:
    """Raise `ArgumentsError` when the arguments are longer than a task may have."""
    if text and len(text) > MAX_TEXT:
        raise ArgumentsError(
            _("The arguments are %(length)d characters long; a task may have at most %(max)d.")
            % {"length": len(text), "max": MAX_TEXT}
        )
    if len(argv) > MAX_ARGUMENTS:
        raise ArgumentsError(
            _("These are %(count)d arguments; a task may have at most %(max)d.")
            % {"count": len(argv), "max": MAX_ARGUMENTS}
        )


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


def load_failure(error: BaseException) -> str:
    """``"<exception class>: <message>"`` of code that failed to load, redacted as a run's log is.

    Shown on the admin's pages (a command's usage, a form's error) to whoever
    may view the command: an import error can quote a setting or a URL with
    its password (``docs/security.rst``, "Secrets in logs").
    """
    # Deferred: only a command or function that fails to load needs the redaction.
    from .redaction import redactor

    return redactor()[0]("%s: %s" % (type(error).__name__, error))


def _load_parser(app_name: str, command_name: str) -> argparse.ArgumentParser:
    """Load the management command and return its argument parser, built as ``call_command`` does.

    Raise `_CommandLoadError` with the reason if the command cannot be
    imported or instantiated, or its parser cannot be built.  Call it with
    stdout/stderr redirected: importing a module may print.
    """
    # Deferred: Django's management package is loaded only when a command's arguments are checked.
    from django.core.management import load_command_class

    try:
        command = load_command_class(app_name, command_name)
    except Exception as error:  # ImportError, AttributeError, errors in the module
        raise _CommandLoadError(load_failure(error)) from error
    try:
        parser = command.create_parser("manage.py", command_name)
    except Exception as error:
        raise _CommandLoadError(
            _("its arguments parser cannot be built: %(error)s") % {"error": load_failure(error)}
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


# --------------------------------------------------------------------------- defusing the parser
# Saving a task form must not act (see "Checking arguments without side
# effects" in the module documentation): the parser built for the check is
# changed so that parsing opens no file and runs no custom action.  It is
# built afresh for each check and thrown away, so changing it is harmless.

#: ``type=`` functions that open the file named by the value (mode ``"r"``, or
#: the ``mode`` keyword of a `functools.partial` wrapping them).  Together with
#: `argparse.FileType` instances (which carry their own mode) these are the
#: types that `_defuse_parser` replaces by a path check.  ``io.open`` is the
#: builtin ``open``; it is listed for clarity.
FILE_OPENING_FUNCTIONS = (open, io.open, codecs.open)

#: Names under which argparse itself registers its action classes; the
#: classes are looked up in a plain `argparse.ArgumentParser`, never in the
#: command's parser, which may register its own classes under these names.
_BUILTIN_ACTION_NAMES = (
    None,
    "store",
    "store_const",
    "store_true",
    "store_false",
    "append",
    "append_const",
    "count",
    "extend",
    "help",
    "version",
    "parsers",
)


def _builtin_action_classes() -> frozenset[type]:
    """Return argparse's own action classes, as this Python version registers them."""
    registry = argparse.ArgumentParser(add_help=False)
    classes = {registry._registry_get("action", name) for name in _BUILTIN_ACTION_NAMES}
    classes.add(argparse.BooleanOptionalAction)  # public class, not registered under a name
    classes.discard(None)  # a name unknown to this Python version
    return frozenset(classes)


#: argparse's own action classes, whose ``__call__`` only stores a value,
#: prints the help/version or runs a sub-parser.  Compared by identity: a
#: subclass can override ``__call__``, so it counts as a custom action.
_BUILTIN_ACTION_CLASSES = _builtin_action_classes()
_SUBPARSERS_ACTION_CLASS = argparse.ArgumentParser(add_help=False)._registry_get("action", "parsers")
_EXITING_ACTION_CLASSES = tuple(
    cls for cls in (getattr(argparse, "_HelpAction", None), getattr(argparse, "_VersionAction", None)) if cls
)


class _DevelopersValue(str):
    """A string default or ``const`` of an argument, written by the command's developer.

    Lets the path check tell a ``-`` default (standard output, the developer's
    choice) from a ``-`` typed by the staff user, which it refuses: argparse
    hands the default object itself to ``type=``, while CPython shares a
    single object for every typed ``"-"``.
    """


class _UnsafeParserError(Exception):
    """The parser cannot be defused; the message is the reason."""


def _opening_mode(type_func: object) -> str | None:
    """Return the mode in which ``type_func`` opens the file named by a value, or None if it opens none."""
    if isinstance(type_func, argparse.FileType):
        return str(getattr(type_func, "_mode", "r"))
    keywords: dict = {}
    if isinstance(type_func, functools.partial):
        type_func, keywords = type_func.func, type_func.keywords
        if isinstance(type_func, argparse.FileType):
            return str(getattr(type_func, "_mode", "r"))
    if any(type_func is function for function in FILE_OPENING_FUNCTIONS):
        return str(keywords.get("mode", "r"))
    return None


def _shown_path(value: str) -> str:
    """Return ``value`` quoted, followed by its absolute path when it is relative."""
    absolute = os.path.abspath(value)
    return repr(value) if absolute == value else "%r (%s)" % (value, absolute)


def _path_check(mode: str, dash_is_standard_stream: bool, name: str) -> Callable[[str], str]:
    """Return a ``type=`` callable that checks a path as opening it in ``mode`` would, opening nothing.

    It returns the path unchanged, or raises `argparse.ArgumentTypeError` with
    a message a staff user can act on, which argparse prefixes with the
    argument's name.
    """
    writes = any(char in mode for char in "wax")

    def check_path(value: str) -> str:
        if value == "-" and dash_is_standard_stream:
            if isinstance(value, _DevelopersValue):
                return value  # the command's own default: its developer chose the stream
            if writes:
                message = _(
                    "'-' stands for the standard output, which a task does not have: give the path of a file."
                )
            else:
                message = _(
                    "'-' stands for the standard input, which a task does not have: give the path of a file."
                )
            raise argparse.ArgumentTypeError(message)
        if not value:
            raise argparse.ArgumentTypeError(_("an empty path names no file: give the path of a file."))
        if "\0" in value:  # os.path.exists() says False, open() raises ValueError
            raise argparse.ArgumentTypeError(
                _("%(path)r is not a usable path: it contains a NUL character.") % {"path": value}
            )
        try:
            shown = _shown_path(value)
            # Not normalised: "link/.." must be resolved by the system, as open() would.
            path = os.path.join(os.getcwd(), value)
            if writes:
                if os.path.isdir(path):
                    raise argparse.ArgumentTypeError(
                        _("%(path)s is a directory: give the path of a file to write.") % {"path": shown}
                    )
                directory = os.path.dirname(path)
                if not os.path.isdir(directory):
                    raise argparse.ArgumentTypeError(
                        _("the directory of %(path)s does not exist.") % {"path": shown}
                    )
                if os.path.exists(path):
                    if "x" in mode:
                        raise argparse.ArgumentTypeError(
                            _("the file %(path)s already exists: give the path of a new file.")
                            % {"path": shown}
                        )
                    if not os.access(path, os.W_OK):
                        raise argparse.ArgumentTypeError(
                            _("the file %(path)s is not writable.") % {"path": shown}
                        )
                elif not os.access(directory, os.W_OK | os.X_OK):
                    raise argparse.ArgumentTypeError(
                        _("the file %(path)s cannot be created: its directory is not writable.")
                        % {"path": shown}
                    )
            else:
                if not os.path.exists(path):
                    raise argparse.ArgumentTypeError(_("the file %(path)s does not exist.") % {"path": shown})
                if os.path.isdir(path):
                    raise argparse.ArgumentTypeError(
                        _("%(path)s is a directory: give the path of a file to read.") % {"path": shown}
                    )
                if not os.access(path, os.R_OK | (os.W_OK if "+" in mode else 0)):
                    if "+" in mode:
                        message = _("the file %(path)s is not both readable and writable.")
                    else:
                        message = _("the file %(path)s is not readable.")
                    raise argparse.ArgumentTypeError(message % {"path": shown})
        except (OSError, ValueError) as error:  # pragma: no cover - e.g. os.getcwd() removed
            raise argparse.ArgumentTypeError(
                _("%(path)r is not a usable path: %(error)s") % {"path": value, "error": error}
            ) from error
        return value

    check_path.__name__ = name  # shown by argparse's messages and MetavarTypeHelpFormatter
    return check_path


def _inert_call(self, parser, namespace, values, option_string=None):
    """``__call__`` of a defused custom action: store the values, do nothing else."""
    setattr(namespace, self.dest, values)


def _exiting_call(self, parser, namespace, values, option_string=None):
    """``__call__`` of a defused custom help/version action: stop, printing nothing.

    `validate_arguments` then refuses the option as it refuses ``--help``.
    """
    raise SystemExit(0)


def _defuse_type(parser: argparse.ArgumentParser, action: argparse.Action) -> None:
    """Replace a file-opening ``type=`` of ``action`` by a path check (see the module docs)."""
    try:  # a type may be a name registered in the parser, e.g. parser.register("type", "infile", ...)
        type_func = parser._registry_get("type", action.type, action.type)
    except TypeError:  # an unhashable type object: not a registered name
        type_func = action.type
    mode = _opening_mode(type_func)
    if mode is None:
        return
    name = getattr(type_func, "__name__", type(type_func).__name__)
    action.type = _path_check(mode, isinstance(type_func, argparse.FileType), name)
    # argparse converts a string default and const with type= too: mark them
    # as the developer's (see _DevelopersValue); they are still path-checked.
    if type(action.default) is str:
        action.default = _DevelopersValue(action.default)
    if type(action.const) is str:
        action.const = _DevelopersValue(action.const)


def _defuse_action(action: argparse.Action) -> None:
    """Make a custom action inert: same ``nargs``, but ``__call__`` only stores the values."""
    cls = type(action)
    if cls in _BUILTIN_ACTION_CLASSES:
        return
    call = _exiting_call if isinstance(action, _EXITING_ACTION_CLASSES) else _inert_call
    try:
        # A subclass keeps every attribute of the action (nargs, dest, choices,
        # isinstance checks) and its metaclass; only __call__ changes.
        inert = type(cls)(
            "Inert" + cls.__name__,
            (cls,),
            {
                "__call__": call,
                "__slots__": (),
                "__module__": __name__,
                "__qualname__": "Inert" + cls.__name__,
            },
        )
        action.__class__ = inert
    except Exception as error:  # pragma: no cover - an exotic metaclass or layout
        raise _UnsafeParserError(
            _("the custom action of %(argument)s cannot be made inert (%(error)s)")
            % {
                "argument": "/".join(action.option_strings) or action.dest,
                "error": "%s: %s" % (type(error).__name__, error),
            }
        ) from error


def _defuse_parser(parser: argparse.ArgumentParser, _seen: set[int] | None = None) -> None:
    """Change ``parser`` and its sub-parsers so that parsing neither opens files nor runs custom actions.

    See "Checking arguments without side effects" in the module documentation.
    Raise `_UnsafeParserError` if a custom action cannot be made inert.
    """
    seen = set() if _seen is None else _seen
    if id(parser) in seen:  # a sub-parser reachable twice (aliases, cycles)
        return
    seen.add(id(parser))
    # "@file" arguments would read the named file while parsing, and its
    # contents could come back in the error message ("unrecognized
    # arguments: ..."): a form must read no file of the server.
    parser.fromfile_prefix_chars = None
    for action in parser._actions:
        _defuse_type(parser, action)
        _defuse_action(action)
        if isinstance(action, _SUBPARSERS_ACTION_CLASS) and isinstance(action.choices, dict):
            for subparser in action.choices.values():
                if isinstance(subparser, argparse.ArgumentParser):
                    _defuse_parser(subparser, seen)


def validate_arguments(app_name: str, command_name: str, argv: list[str]) -> None:
    """Check ``argv`` against the real argument parser of a management command.

    Load the command with ``load_command_class(app_name, command_name)``, build
    its parser as ``call_command`` does and parse ``argv`` with it; the command
    itself is never run.  Accept exactly what ``call_command(command, *argv)``
    accepts at parsing time (values such as app labels are only checked when
    the command runs), except for files and custom actions, as follows.

    Checking has no side effects, because saving a task form must not act: a
    staff user who may edit a task must not be able to write files or run code
    by saving it.  So the parser is defused before parsing (see "Checking
    arguments without side effects" in the module documentation): a
    file-opening ``type=`` (`argparse.FileType`, ``open``, ...) becomes a
    path check that opens, creates and truncates nothing -- a file to read
    must exist and be readable, a file to write must be in an existing,
    writable directory, and a typed ``-`` (standard input/output) is refused --
    and a custom action consumes its values but only stores them.  Here,
    validation and ``call_command`` may disagree: a path that passes the check
    may still fail to open when the task runs (and relative paths are checked
    from the web server's current directory), and what a custom action would
    refuse at run time is not refused here.

    Nothing is printed to the process's stdout/stderr: both are redirected
    while the command is loaded and parsed.  (The redirection swaps the
    process-wide ``sys.stdout``/``sys.stderr`` for that short time.)

    Raise `ArgumentsError` naming the problem when the command cannot be
    loaded, an option is unknown, a required argument is missing, a value has
    the wrong type or is not an allowed choice, a file path fails its check,
    or ``argv`` asks for the help or version (which would print and exit
    instead of running).
    """
    # Deferred, as load_command_class above.
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
        try:
            _defuse_parser(parser)  # parsing must not open files nor run custom actions
        except _UnsafeParserError as error:  # pragma: no cover - see _defuse_action
            raise ArgumentsError(
                _("The arguments of %(command)s cannot be checked safely: %(error)s")
                % {"command": repr(command_name), "error": error}
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
            return _("This command can no longer be loaded: %(error)s") % {"error": load_failure(error)}

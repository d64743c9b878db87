"""Tests for taskmanager.arguments: parsing, formatting and validating task arguments."""

import argparse
import codecs
import functools
import itertools
import os
import sys
import types

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={},
    )
    django.setup()

from pathlib import Path

import pytest
from django.core.management import BaseCommand, CommandError, call_command, load_command_class

from taskmanager.arguments import (
    ArgumentsError,
    command_line,
    command_usage,
    format_arguments,
    parse_arguments,
    validate_arguments,
)

GUIDE_TEXT = "-f, --secondarg param1 param2, --thirdarg=pippo, --thirdarg"
GUIDE_ARGV = ["-f", "--secondarg", "param1", "param2", "--thirdarg=pippo", "--thirdarg"]


# --------------------------------------------------------------------------- parse_arguments


def test_parse_guide_example():
    assert parse_arguments(GUIDE_TEXT) == GUIDE_ARGV


@pytest.mark.parametrize("text", [None, "", " ", ",", " , ,, \t\n"])
def test_parse_empty(text):
    assert parse_arguments(text) == []


@pytest.mark.parametrize(
    "text, argv",
    [
        (" , -f ,, ", ["-f"]),
        ("-f,,--g", ["-f", "--g"]),
        (",-f,", ["-f"]),
        ("a   b\t c\n d\r\ne", ["a", "b", "c", "d", "e"]),
        ("a,b c", ["a", "b", "c"]),  # comma and blank are the same separator
    ],
)
def test_parse_stray_separators(text, argv):
    assert parse_arguments(text) == argv


@pytest.mark.parametrize(
    "text, argv",
    [
        ('--name "a b, c"', ["--name", "a b, c"]),
        ("--name 'a b, c'", ["--name", "a b, c"]),
        ('--name="a b"', ["--name=a b"]),
        ("--name='a,b'", ["--name=a,b"]),
        ('"it\'s"', ["it's"]),
        ("'say \"hi\"'", ['say "hi"']),
        ("'it'\"'\"'s'", ["it's"]),  # adjacent quoted pieces join
        ("ab'c d'ef", ["abc def"]),
        ("'a\nb'", ["a\nb"]),
    ],
)
def test_parse_quotes(text, argv):
    assert parse_arguments(text) == argv


@pytest.mark.parametrize(
    "text, argv",
    [
        ('""', [""]),
        ("''", [""]),
        ('--name "", -f', ["--name", "", "-f"]),
        ('"" ""', ["", ""]),
        ('a""', ["a"]),  # an empty quoted piece glued to a word adds nothing
    ],
)
def test_parse_quoted_empty_string_is_kept(text, argv):
    assert parse_arguments(text) == argv


def test_parse_repeated_options_are_kept():
    assert parse_arguments("--tag a, --tag b, --tag a, -v 2, -v 2") == [
        "--tag",
        "a",
        "--tag",
        "b",
        "--tag",
        "a",
        "-v",
        "2",
        "-v",
        "2",
    ]


@pytest.mark.parametrize(
    "text, argv",
    [
        ("--thirdarg=pippo", ["--thirdarg=pippo"]),
        ("--x=", ["--x="]),
        ("--x==y", ["--x==y"]),
        ("--x = y", ["--x", "=", "y"]),
        ("-ofile.txt", ["-ofile.txt"]),
    ],
)
def test_parse_equal_forms(text, argv):
    assert parse_arguments(text) == argv


@pytest.mark.parametrize(
    "text, argv",
    [
        (r"C:\temp", ["C:\\temp"]),
        (r"--re \d+\s", ["--re", "\\d+\\s"]),
        (r'"C:\my dir\"', ["C:\\my dir\\"]),
        (r"'a\'", ["a\\"]),
        ("a\\", ["a\\"]),
        (r"a\ b", ["a\\", "b"]),  # a backslash does not escape a separator
        (r"a\,b", ["a\\", "b"]),
    ],
)
def test_parse_backslash_is_literal(text, argv):
    assert parse_arguments(text) == argv


@pytest.mark.parametrize(
    "text",
    ['"abc', "'abc", '--name "a b', "--x 'it's'", 'ok, "', "'", r'"a\"b"'],
)
def test_parse_unbalanced_quotes(text):
    with pytest.raises(ArgumentsError, match="Unbalanced quotes"):
        parse_arguments(text)


def test_parse_unbalanced_quotes_message_names_quote():
    with pytest.raises(ArgumentsError) as info:
        parse_arguments('--name "a b')
    assert "double quote" in str(info.value)
    assert "'a b'" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_hash_is_not_a_comment():
    assert parse_arguments("#1, --x #y") == ["#1", "--x", "#y"]


def test_parse_unicode():
    assert parse_arguments('--città Perugia, --名前 "日本 語", é,ü') == [
        "--città",
        "Perugia",
        "--名前",
        "日本 語",
        "é",
        "ü",
    ]
    # Only ASCII blanks separate: a non-breaking space is part of the value.
    assert parse_arguments("a\u00a0b c") == ["a\u00a0b", "c"]


# --------------------------------------------------------------------------- format_arguments


def test_format_guide_example():
    assert format_arguments(GUIDE_ARGV) == GUIDE_TEXT


@pytest.mark.parametrize(
    "argv, text",
    [
        ([], ""),
        (["a", "b"], "a, b"),
        (["--name", "a b, c"], "--name 'a b, c'"),
        (["--name", ""], "--name ''"),
        (["it's"], '"it\'s"'),
        (["C:\\temp"], "C:\\temp"),
        (["-v", "-1"], "-v -1"),  # a negative number is a value
        (["a", "-", "b"], "a, -, b"),
    ],
)
def test_format_hand_cases(argv, text):
    assert format_arguments(argv) == text
    assert parse_arguments(text) == argv


INTERESTING = [
    "",
    " ",
    "plain",
    "-f",
    "--opt",
    "--opt=value",
    "--opt=",
    "a b",
    "a,b",
    ",",
    ",,",
    " , ",
    "'",
    '"',
    "it's",
    'say "hi"',
    "both ' and \"",
    "''",
    '""',
    "\\",
    "\\\\",
    "C:\\my dir\\",
    "back\\'slash",
    'back\\"slash',
    "#comment",
    "tab\there",
    "new\nline",
    "cr\rlf\n",
    "città",
    "日本 語",
    "non\u00a0breaking",
    "emoji 🎉",
    "=",
    "-",
    "--",
    "-1",
    "$HOME",
    "*?[]{}",
    "a;b|c&d",
]


def test_round_trip_interesting_strings():
    for value in INTERESTING:
        assert parse_arguments(format_arguments([value])) == [value], value
    for first, second in itertools.product(INTERESTING, repeat=2):
        argv = [first, second]
        assert parse_arguments(format_arguments(argv)) == argv, argv
    for size in (3, 7):
        for start in range(len(INTERESTING)):
            argv = [
                INTERESTING[(start + offset * 5) % len(INTERESTING)]
                for offset in range(size)
            ]
            assert parse_arguments(format_arguments(argv)) == argv, argv
    assert parse_arguments(format_arguments(INTERESTING)) == INTERESTING


def test_round_trip_texts():
    for text in [GUIDE_TEXT, "--name \"a b, c\", -x ''", "C:\\temp, --re \\d+"]:
        argv = parse_arguments(text)
        assert parse_arguments(format_arguments(argv)) == argv


# --------------------------------------------------------------------------- command_line


def test_command_line():
    assert command_line("check", []) == "manage.py check"
    assert (
        command_line("check", ["--deploy", "--tag", "models"])
        == "manage.py check --deploy --tag models"
    )
    assert (
        command_line("mycmd", ["--name", "a b, c", ""])
        == "manage.py mycmd --name 'a b, c' ''"
    )


# --------------------------------------------------------------------------- validate_arguments


def assert_nothing_printed(capfd):
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


@pytest.mark.parametrize(
    "command, argv",
    [
        ("check", []),
        ("check", ["--deploy", "--tag", "models", "--tag", "security"]),
        ("check", ["--fail-level", "ERROR"]),
        ("check", ["--fail-level=ERROR", "-v", "2"]),
        ("check", ["auth", "contenttypes"]),  # app labels are only checked when it runs
        ("check", ["--", "--help"]),  # after "--" it is a positional value
        ("diffsettings", ["--all", "--output", "unified"]),
        ("sendtestemail", ["admin@example.com", "other@example.com"]),
        ("loaddata", ["fixture.json"]),
        ("sqlmigrate", ["auth", "0001", "--backwards"]),
        ("dumpdata", ["--indent", "2", "auth.user"]),
    ],
)
def test_validate_valid_arguments(command, argv, capfd):
    validate_arguments("django.core", command, argv)
    assert_nothing_printed(capfd)


@pytest.mark.parametrize(
    "command, argv, message",
    [
        ("check", ["--nope"], "unrecognized arguments: --nope"),
        (
            "check",
            ["--deploy", "extra", "--nope=1"],
            "unrecognized arguments: --nope=1",
        ),
        ("check", ["--fail-level", "NOPE"], "invalid choice: 'NOPE'"),
        ("check", ["--fail-level"], "expected one argument"),
        ("diffsettings", ["--output", "x"], "invalid choice: 'x'"),
        ("dumpdata", ["--indent", "abc"], "invalid int value: 'abc'"),
        ("check", ["-v", "abc"], "invalid int value: 'abc'"),
        ("check", ["-v", "9"], "invalid choice: 9"),
        (
            "sqlmigrate",
            ["auth"],
            "the following arguments are required: migration_name",
        ),
        ("loaddata", [], "No database fixture specified"),
    ],
)
def test_validate_invalid_arguments(command, argv, message, capfd):
    with pytest.raises(ArgumentsError, match=message) as info:
        validate_arguments("django.core", command, argv)
    assert command in str(info.value)
    assert not str(info.value).startswith("Error:")
    assert_nothing_printed(capfd)


@pytest.mark.parametrize(
    "argv, token, kind",
    [
        (["--help"], "--help", "help"),
        (["-h"], "-h", "help"),
        (["--deploy", "-h"], "-h", "help"),
        (["--hel"], "--hel", "help"),  # argparse accepts abbreviations
        (["--version"], "--version", "version"),
        (["--vers"], "--vers", "version"),
        (["--tag", "models", "--version", "--help"], "--version", "version"),
    ],
)
def test_validate_help_and_version_are_refused(argv, token, kind, capfd):
    stdout, stderr = sys.stdout, sys.stderr
    with pytest.raises(ArgumentsError) as info:
        validate_arguments("django.core", "check", argv)
    message = str(info.value)
    assert message.startswith(f"{token} is not allowed as a task argument")
    assert kind in message
    assert sys.stdout is stdout and sys.stderr is stderr
    assert_nothing_printed(capfd)


def test_validate_unloadable_command(capfd):
    with pytest.raises(ArgumentsError, match="can no longer be loaded") as info:
        validate_arguments("django.core", "no_such_command", [])
    assert "no_such_command" in str(info.value)
    with pytest.raises(ArgumentsError, match="can no longer be loaded"):
        validate_arguments("no_such_package_xyz", "check", [])
    assert_nothing_printed(capfd)


def test_validate_does_not_run_the_command(monkeypatch):
    from django.core.management.commands import check, sendtestemail

    def fail(*args, **kwargs):
        raise AssertionError("the command must not run")

    for module in (check, sendtestemail):
        monkeypatch.setattr(module.Command, "execute", fail)
        monkeypatch.setattr(module.Command, "handle", fail)
    validate_arguments("django.core", "check", ["--deploy"])
    validate_arguments("django.core", "sendtestemail", ["admin@example.com"])


@pytest.mark.parametrize(
    "command, argv",
    [
        ("check", ["--deploy", "--fail-level", "ERROR"]),
        ("check", ["--nope"]),
        ("check", ["--fail-level", "NOPE"]),
        ("check", ["--", "--help"]),
        ("dumpdata", ["--indent", "abc"]),
        ("sqlmigrate", ["auth"]),
        ("loaddata", []),
    ],
)
def test_validate_agrees_with_call_command_parsing(command, argv):
    """Whatever validation accepts, call_command's parsing accepts, and vice versa."""
    from django.core.management import load_command_class

    command_object = load_command_class("django.core", command)
    parser = command_object.create_parser("", command)  # what call_command builds
    try:
        parser.parse_args(argv)
    except CommandError:
        accepted = False
    else:
        accepted = True
    try:
        validate_arguments("django.core", command, argv)
    except ArgumentsError:
        assert not accepted
    else:
        assert accepted


# Django 6.1's model checks ask SQLite whether it supports JSONField (AuditEntry.changes): a query.
@pytest.mark.django_db
def test_validated_arguments_work_with_call_command(capfd):
    argv = parse_arguments("--deploy, --fail-level CRITICAL")
    validate_arguments("django.core", "check", argv)
    call_command("check", *argv)  # runs for real: parsing must not complain
    capfd.readouterr()


# --------------------------------------------------------------------------- fake commands


class _RaisingAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        raise RuntimeError("custom action exploded")


class _ExitingAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print("noise on stdout")
        parser.exit(3, "noise on stderr\n")


def _raising_type(value):
    raise RuntimeError("custom type exploded")


def _exiting_type(value):
    print("noise on stdout")
    sys.stderr.write("noise on stderr\n")
    raise SystemExit(3)


class NoisyCommand(BaseCommand):
    help = "A command whose parser misbehaves."

    def add_arguments(self, parser):
        print("printed while building the parser")
        sys.stderr.write("written to stderr while building the parser\n")
        parser.add_argument("count", type=int)
        parser.add_argument("--explode", action=_RaisingAction, nargs=0)
        parser.add_argument("--bye", action=_ExitingAction)
        # type= callables other than file openers still run when validating.
        parser.add_argument("--explode-type", type=_raising_type)
        parser.add_argument("--bye-type", type=_exiting_type)

    def handle(self, *args, **options):  # pragma: no cover - must never run
        raise AssertionError("the command must not run")


class _CustomStoreAction(argparse._StoreAction):
    """A subclass of a built-in action: its own __call__ makes it a custom action."""

    def __call__(self, parser, namespace, values, option_string=None):
        raise RuntimeError("custom store subclass ran")


class _CustomHelpAction(argparse._HelpAction):
    def __call__(self, parser, namespace, values, option_string=None):
        print("custom help")
        parser.exit()


class OtherOpenersCommand(BaseCommand):
    """File-opening types written in other ways than in tm_argsafe_files."""

    def add_arguments(self, parser):
        parser.register("type", "outfile", argparse.FileType("w"))
        parser.add_argument("--partial", type=functools.partial(open, mode="w"))
        parser.add_argument("--codecs", type=functools.partial(codecs.open, mode="a", encoding="utf-8"))
        parser.add_argument("--registered", type="outfile")
        parser.add_argument("--optional", nargs="?", const="-", type=argparse.FileType("w"))
        parser.add_argument("--many", nargs="+", type=argparse.FileType("w"))
        parser.add_argument("--store", action=_CustomStoreAction)
        parser.add_argument("--assist", action=_CustomHelpAction)

    def handle(self, *args, **options):  # pragma: no cover - must never run
        raise AssertionError("the command must not run")


class BrokenParserCommand(BaseCommand):
    def add_arguments(self, parser):
        raise RuntimeError("parser setup failed")


#: What a command that fails to load may quote: a URL with its password.
LOAD_SECRET = "hunter2-load-secret"


class SecretFailureCommand(BaseCommand):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("cannot reach postgres://app:%s@db/app" % LOAD_SECRET)


@pytest.fixture
def fake_app(monkeypatch):
    """Register an importable fake app ``fakeapp_args`` with a few commands, in memory."""
    names = [
        "fakeapp_args",
        "fakeapp_args.management",
        "fakeapp_args.management.commands",
    ]
    for name in names:
        module = types.ModuleType(name)
        module.__path__ = []
        monkeypatch.setitem(sys.modules, name, module)
    commands = {
        "noisy": NoisyCommand,
        "broken_parser": BrokenParserCommand,
        "other_openers": OtherOpenersCommand,
        "no_class": None,
        "secret_failure": SecretFailureCommand,
    }
    for command_name, command_class in commands.items():
        module = types.ModuleType(f"fakeapp_args.management.commands.{command_name}")
        if command_class is not None:
            module.Command = command_class
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return "fakeapp_args"


def test_validate_fake_command_valid(fake_app, capfd):
    validate_arguments(fake_app, "noisy", ["3"])
    assert_nothing_printed(capfd)


def test_validate_fake_command_wrong_type_and_missing(fake_app, capfd):
    with pytest.raises(
        ArgumentsError, match="argument count: invalid int value: 'abc'"
    ):
        validate_arguments(fake_app, "noisy", ["abc"])
    with pytest.raises(
        ArgumentsError, match="the following arguments are required: count"
    ):
        validate_arguments(fake_app, "noisy", [])
    assert_nothing_printed(capfd)


def test_validate_fake_command_custom_actions_do_not_run(fake_app, capfd):
    """Custom actions are inert when validating: no exception, no exit, nothing printed."""
    validate_arguments(fake_app, "noisy", ["1", "--explode"])
    validate_arguments(fake_app, "noisy", ["1", "--bye", "--explode"])
    with pytest.raises(ArgumentsError, match="ignored explicit argument 'x'"):
        validate_arguments(fake_app, "noisy", ["1", "--bye=x"])  # nargs=0 set by its __init__
    assert_nothing_printed(capfd)


def test_validate_fake_command_exception_in_type(fake_app, capfd):
    with pytest.raises(ArgumentsError, match="RuntimeError: custom type exploded"):
        validate_arguments(fake_app, "noisy", ["1", "--explode-type", "x"])
    assert_nothing_printed(capfd)


def test_validate_fake_command_other_exit(fake_app, capfd):
    with pytest.raises(ArgumentsError, match=r"exit \(status 3\)") as info:
        validate_arguments(fake_app, "noisy", ["1", "--bye-type", "x"])
    assert "noise on stdout" in str(info.value)
    assert "noise on stderr" in str(info.value)
    assert "while building the parser" not in str(info.value)
    assert_nothing_printed(capfd)


def test_validate_fake_command_help(fake_app, capfd):
    with pytest.raises(ArgumentsError, match="--help is not allowed"):
        validate_arguments(fake_app, "noisy", ["--help"])
    assert_nothing_printed(capfd)


@pytest.mark.parametrize(
    "command, reason",
    [("broken_parser", "parser setup failed"), ("no_class", "AttributeError")],
)
def test_validate_fake_command_not_loadable(fake_app, command, reason, capfd):
    with pytest.raises(ArgumentsError, match="can no longer be loaded") as info:
        validate_arguments(fake_app, command, [])
    assert reason in str(info.value)
    assert command_usage(fake_app, command).startswith(
        "This command can no longer be loaded: "
    )
    assert reason in command_usage(fake_app, command)
    assert_nothing_printed(capfd)


def test_a_load_failure_is_shown_redacted(fake_app, capfd):
    """The reason a command cannot be loaded is on the admin's pages (its usage, a form's
    error), for whoever may view the command: redacted as a run's log is."""
    with pytest.raises(ArgumentsError, match="can no longer be loaded") as info:
        validate_arguments(fake_app, "secret_failure", [])
    usage = command_usage(fake_app, "secret_failure")
    for text in (str(info.value), usage):
        assert "RuntimeError: cannot reach postgres://app:" in text, text
        assert LOAD_SECRET not in text and "[redacted]" in text, text
    assert_nothing_printed(capfd)


# --------------------------------------------------------------------------- command_usage


def test_command_usage(capfd):
    usage = command_usage("django.core", "check")
    assert usage.startswith("usage: manage.py check")
    assert "--fail-level" in usage
    assert "--deploy" in usage
    assert "\x1b[" not in usage  # no colour codes
    assert_nothing_printed(capfd)


def test_command_usage_fake_command(fake_app, capfd):
    usage = command_usage(fake_app, "noisy")
    assert usage.startswith("usage: manage.py noisy")
    assert "A command whose parser misbehaves." in usage
    assert_nothing_printed(capfd)


def test_command_usage_unloadable(capfd):
    usage = command_usage("django.core", "no_such_command")
    assert usage.startswith("This command can no longer be loaded: ")
    assert "no_such_command" in usage
    usage = command_usage("no_such_package_xyz", "check")
    assert usage.startswith("This command can no longer be loaded: ")
    assert_nothing_printed(capfd)


# --------------------------------------------------------------------------- validation has no side effects
# Saving a task form validates its arguments; that must not open, create or
# truncate files, nor run the command's custom actions (issue "Who may run what").

TESTAPP = "tests.testapp"
FILES = "tm_argsafe_files"
ACTION = "tm_argsafe_action"
CONTENT = "precious content\n"
OLD_TIME = 1_000_000_000  # 2001: any write would move the mtime to now


def existing_file(path):
    """Write CONTENT to ``path`` with an old mtime; return its (size, mtime_ns)."""
    path.write_text(CONTENT)
    os.utime(path, (OLD_TIME, OLD_TIME))
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def assert_unchanged(path, size_and_mtime):
    assert path.read_text() == CONTENT
    stat = path.stat()
    assert (stat.st_size, stat.st_mtime_ns) == size_and_mtime


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run in ``tmp_path`` (where tm_argsafe_files would create its relative default file)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("option", ["--out", "--append", "--new", "--log"])
def test_argsafe_file_to_write_is_not_created(option, in_tmp_dir, capfd):
    target = in_tmp_dir / "sub" / "created.txt"
    target.parent.mkdir()
    validate_arguments(TESTAPP, FILES, [option, str(target)])
    validate_arguments(TESTAPP, FILES, [f"{option}={target}"])
    assert not target.exists()
    assert sorted(os.listdir(in_tmp_dir)) == ["sub"]
    assert os.listdir(target.parent) == []
    assert_nothing_printed(capfd)


@pytest.mark.parametrize("option", ["--out", "--append", "--log", "--in", "--text"])
def test_argsafe_existing_file_is_not_truncated(option, in_tmp_dir):
    target = in_tmp_dir / "existing.txt"
    before = existing_file(target)
    validate_arguments(TESTAPP, FILES, [option, str(target)])
    validate_arguments(TESTAPP, FILES, [option, "existing.txt"])  # relative to the current directory
    assert_unchanged(target, before)


def test_argsafe_exclusive_file_must_not_exist(in_tmp_dir):
    target = in_tmp_dir / "existing.txt"
    before = existing_file(target)
    with pytest.raises(ArgumentsError, match="argument --new: the file .* already exists") as info:
        validate_arguments(TESTAPP, FILES, ["--new", str(target)])
    assert str(info.value).startswith(f"Invalid arguments for '{FILES}': ")
    assert_unchanged(target, before)


def test_argsafe_defaults_create_no_file(in_tmp_dir):
    """argparse converts a string default with type=: the FileType('w') default creates nothing."""
    validate_arguments(TESTAPP, FILES, [])
    validate_arguments(TESTAPP, FILES, ["--out", str(in_tmp_dir / "out.txt")])
    assert os.listdir(in_tmp_dir) == []
    default = in_tmp_dir / "tm_argsafe_default.log"
    before = existing_file(default)
    validate_arguments(TESTAPP, FILES, [])
    assert_unchanged(default, before)


def test_argsafe_default_is_checked_too(in_tmp_dir):
    (in_tmp_dir / "tm_argsafe_default.log").mkdir()
    with pytest.raises(ArgumentsError, match="argument --log: 'tm_argsafe_default.log' .* is a directory"):
        validate_arguments(TESTAPP, FILES, [])


@pytest.mark.parametrize("option", ["--in", "--text"])
def test_argsafe_missing_file_to_read(option, in_tmp_dir):
    missing = in_tmp_dir / "missing.txt"
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(TESTAPP, FILES, [option, str(missing)])
    assert str(info.value) == (
        f"Invalid arguments for '{FILES}': argument {option}: the file '{missing}' does not exist."
    )
    with pytest.raises(ArgumentsError) as info:  # a relative path is shown with its absolute path
        validate_arguments(TESTAPP, FILES, [option, "missing.txt"])
    assert f"the file 'missing.txt' ({missing}) does not exist." in str(info.value)
    assert not missing.exists()


@pytest.mark.parametrize(
    "option, stream", [("--out", "standard output"), ("--append", "standard output"), ("--in", "standard input")]
)
def test_argsafe_dash_is_refused(option, stream, in_tmp_dir, capfd):
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(TESTAPP, FILES, [option, "-"])
    assert str(info.value) == (
        f"Invalid arguments for '{FILES}': argument {option}: '-' stands for the {stream}, "
        "which a task does not have: give the path of a file."
    )
    assert_nothing_printed(capfd)


def test_argsafe_dash_default_is_accepted(in_tmp_dir):
    """--echo defaults to '-' (standard output): the developer's choice, not refused."""
    validate_arguments(TESTAPP, FILES, [])
    with pytest.raises(ArgumentsError, match="argument --echo: '-' stands for the standard output"):
        validate_arguments(TESTAPP, FILES, ["--echo", "-"])


def test_argsafe_plain_open_of_dash_is_a_path(in_tmp_dir):
    """For type=open, '-' is an ordinary file name, checked like any other."""
    with pytest.raises(ArgumentsError, match=r"argument --text: the file '-' \(.*\) does not exist"):
        validate_arguments(TESTAPP, FILES, ["--text", "-"])
    (in_tmp_dir / "-").write_text(CONTENT)
    validate_arguments(TESTAPP, FILES, ["--text", "-"])


@pytest.mark.parametrize("option", ["--out", "--append", "--new", "--in", "--text"])
def test_argsafe_directory_is_refused(option, in_tmp_dir):
    with pytest.raises(ArgumentsError, match=f"argument {option}: '.*' is a directory: give the path of a file"):
        validate_arguments(TESTAPP, FILES, [option, str(in_tmp_dir)])
    with pytest.raises(ArgumentsError, match="is a directory"):
        validate_arguments(TESTAPP, FILES, [option, "."])
    assert os.listdir(in_tmp_dir) == []


def test_argsafe_missing_directory_is_refused(in_tmp_dir):
    target = in_tmp_dir / "no_such_dir" / "out.txt"
    with pytest.raises(ArgumentsError, match="argument --out: the directory of '.*out.txt' does not exist"):
        validate_arguments(TESTAPP, FILES, ["--out", str(target)])
    assert os.listdir(in_tmp_dir) == []


def test_argsafe_empty_or_invalid_path_is_refused(in_tmp_dir):
    with pytest.raises(ArgumentsError, match="argument --out: an empty path names no file"):
        validate_arguments(TESTAPP, FILES, ["--out", ""])
    with pytest.raises(ArgumentsError, match=r"argument --in: 'a\\x00b' is not a usable path: it contains a NUL"):
        validate_arguments(TESTAPP, FILES, ["--in", "a\x00b"])
    with pytest.raises(ArgumentsError, match="argument --out: .* contains a NUL character"):
        validate_arguments(TESTAPP, FILES, ["--out", str(in_tmp_dir / "a\x00b")])


def test_argsafe_permissions_are_checked():
    """File permissions are checked as an unprivileged user would meet them.

    Root may read and write everything, and the tests run as root here: the
    checks run in a forked child that first becomes ``nobody``.
    """
    import tempfile
    import traceback

    base = Path(tempfile.mkdtemp(prefix="tm-argsafe-"))
    base.chmod(0o755)  # nobody may enter it, not write in it
    locked = base / "locked"
    locked.mkdir()
    unreadable = base / "unreadable.txt"
    unreadable.write_text(CONTENT)
    unreadable.chmod(0o200)
    locked.chmod(0o500)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            with pytest.raises(ArgumentsError, match="cannot be created: its directory is not writable"):
                validate_arguments(TESTAPP, FILES, ["--out", str(locked / "out.txt")])
            with pytest.raises(ArgumentsError, match="argument --in: the file .* is not readable"):
                validate_arguments(TESTAPP, FILES, ["--in", str(unreadable)])
            code = 0
        except BaseException:  # noqa: BLE001 - printed for the parent's report
            traceback.print_exc()
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    try:
        assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged checks failed (see the captured output)"
        assert os.listdir(locked) == []
    finally:
        import shutil

        locked.chmod(0o700)
        shutil.rmtree(base)


def test_argsafe_custom_action_does_not_run(tmp_path, monkeypatch, capfd):
    from tests.testapp.management.commands.tm_argsafe_action import MARKER_ENV

    env_marker = tmp_path / "env_marker"
    value_marker = tmp_path / "value_marker"
    monkeypatch.setenv(MARKER_ENV, str(env_marker))
    validate_arguments(TESTAPP, ACTION, ["--touch-env"])
    validate_arguments(TESTAPP, ACTION, ["--mark", str(value_marker), "text"])
    validate_arguments(TESTAPP, ACTION, ["--touch-env", "--mark", str(value_marker), "text", "export"])
    assert not env_marker.exists()
    assert not value_marker.exists()
    assert os.listdir(tmp_path) == []
    assert_nothing_printed(capfd)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mark", "only-path"], "argument --mark: expected 2 arguments"),
        (["--mark"], "argument --mark: expected 2 arguments"),
        (["--touch-env=x"], "argument --touch-env: ignored explicit argument 'x'"),
        (["--mark", "a", "b", "c"], "invalid choice: 'c'"),  # a third value is not --mark's
        (["export", "--mark", "a"], "argument --mark: expected 2 arguments"),
    ],
)
def test_argsafe_custom_action_still_checks_its_values(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArgumentsError, match=message):
        validate_arguments(TESTAPP, ACTION, argv)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("subcommand", ["export", "exp"])  # the alias reaches the same sub-parser
def test_argsafe_subparser_file_and_action(subcommand, tmp_path):
    target = tmp_path / "export.txt"
    marker = tmp_path / "marker"
    validate_arguments(TESTAPP, ACTION, [subcommand, "--to", str(target), "--mark", str(marker), "x"])
    assert os.listdir(tmp_path) == []
    before = existing_file(target)
    validate_arguments(TESTAPP, ACTION, [subcommand, "--to", str(target)])
    assert_unchanged(target, before)
    with pytest.raises(ArgumentsError, match="argument --to: '-' stands for the standard output"):
        validate_arguments(TESTAPP, ACTION, [subcommand, "--to", "-"])
    with pytest.raises(ArgumentsError, match="argument --to: '.*' is a directory"):
        validate_arguments(TESTAPP, ACTION, [subcommand, "--to", str(tmp_path)])
    with pytest.raises(ArgumentsError, match="argument --to: the directory of .* does not exist"):
        validate_arguments(TESTAPP, ACTION, [subcommand, "--to", str(tmp_path / "nowhere" / "x")])
    assert os.listdir(tmp_path) == ["export.txt"]


def test_argsafe_other_openers_and_custom_actions(fake_app, tmp_path, capfd):
    target = tmp_path / "out.txt"
    for option in ("--partial", "--codecs", "--registered", "--optional", "--many"):
        validate_arguments(fake_app, "other_openers", [option, str(target)])
        with pytest.raises(ArgumentsError, match=f"argument {option}: '.*' is a directory"):
            validate_arguments(fake_app, "other_openers", [option, str(tmp_path)])
    validate_arguments(fake_app, "other_openers", ["--many", str(target), str(tmp_path / "second.txt")])
    # --optional without a value takes its const "-", the developer's choice.
    validate_arguments(fake_app, "other_openers", ["--optional"])
    validate_arguments(fake_app, "other_openers", ["--store", "x"])  # subclass of _StoreAction: inert
    assert os.listdir(tmp_path) == []
    with pytest.raises(ArgumentsError) as info:  # a custom help action is refused like --help
        validate_arguments(fake_app, "other_openers", ["--assist"])
    assert str(info.value).startswith("--assist is not allowed as a task argument")
    assert_nothing_printed(capfd)


def test_argsafe_only_the_validation_parser_is_defused(in_tmp_dir, monkeypatch, capfd):
    """The command, run by call_command, still opens its files and runs its actions."""
    source = in_tmp_dir / "in.txt"
    source.write_text("copied by the command\n")
    target = in_tmp_dir / "out.txt"
    argv = ["--in", str(source), "--out", str(target)]
    validate_arguments(TESTAPP, FILES, argv)
    assert not target.exists()
    call_command(load_command_class(TESTAPP, FILES), *argv)
    assert target.read_text() == "copied by the command\n"
    assert (in_tmp_dir / "tm_argsafe_default.log").read_text() == "copied by the command\n"

    from tests.testapp.management.commands.tm_argsafe_action import MARKER_ENV

    marker = in_tmp_dir / "marker"
    monkeypatch.setenv(MARKER_ENV, str(in_tmp_dir / "env_marker"))
    argv = ["--touch-env", "--mark", str(marker), "acted", "export", "--to", str(in_tmp_dir / "export.txt")]
    validate_arguments(TESTAPP, ACTION, argv)
    assert not marker.exists()
    call_command(load_command_class(TESTAPP, ACTION), *argv)
    assert marker.read_text() == "acted"
    assert (in_tmp_dir / "env_marker").exists()
    assert (in_tmp_dir / "export.txt").exists()
    capfd.readouterr()

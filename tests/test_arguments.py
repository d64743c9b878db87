"""Tests for taskmanager.arguments: parsing, formatting and validating task arguments."""

import argparse
import itertools
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

import pytest
from django.core.management import BaseCommand, CommandError, call_command

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


class NoisyCommand(BaseCommand):
    help = "A command whose parser misbehaves."

    def add_arguments(self, parser):
        print("printed while building the parser")
        sys.stderr.write("written to stderr while building the parser\n")
        parser.add_argument("count", type=int)
        parser.add_argument("--explode", action=_RaisingAction, nargs=0)
        parser.add_argument("--bye", action=_ExitingAction)

    def handle(self, *args, **options):  # pragma: no cover - must never run
        raise AssertionError("the command must not run")


class BrokenParserCommand(BaseCommand):
    def add_arguments(self, parser):
        raise RuntimeError("parser setup failed")


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
        "no_class": None,
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


def test_validate_fake_command_exception_in_action(fake_app, capfd):
    with pytest.raises(ArgumentsError, match="RuntimeError: custom action exploded"):
        validate_arguments(fake_app, "noisy", ["1", "--explode"])
    assert_nothing_printed(capfd)


def test_validate_fake_command_other_exit(fake_app, capfd):
    with pytest.raises(ArgumentsError, match=r"exit \(status 3\)") as info:
        validate_arguments(fake_app, "noisy", ["1", "--bye"])
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

"""Commands' parsers built ahead of their runs (issue 17, ``taskmanager/runner/parsers.py``).

Through a real uWSGI node with one spooler process: a spooler's fork server
builds each active command's parser once, and a reused child at its first
run, instead of every run building it in ``call_command``. A run still gets
what ``call_command`` gives it: fresh option defaults (a default the
previous run changed is not seen), ``skip_checks``, a bad argument ending
the run with its message in the log. A command whose parser cannot be
built ahead (building it raises outside a run, or reads the database) has
it built in each run, as before.
"""

import json

import pytest

from taskmanager.models import EndKind

from .support.admin import press
from .support.objects import log_texts, make_task
from .support.waits import finished_report

pytestmark = pytest.mark.django_db(transaction=True)

FORK_SERVER = {}
REUSE = {"TASKMANAGER_RUNS_PER_CHILD": 3}
MODES = pytest.mark.parametrize("settings", [FORK_SERVER, REUSE], ids=["fork-server", "reused-child"])


def run(node, commands, name, command="tm_parsed", arguments=""):
    """Run a task made without the admin's check of its arguments (as a run finds them); return its report."""
    task = make_task(commands, name, command, arguments=arguments)
    press(node.admin, task, "start")
    return finished_report(task)


def printed(report) -> dict:
    """What tm_parsed printed: its options, pid, and how often this process built its parser."""
    (line,) = [text for text in log_texts(report) if text.startswith("{")]
    return json.loads(line)


@MODES
def test_runs_get_the_options_call_command_gives_with_a_parser_built_once(uwsgi_node, commands, settings):
    node = uwsgi_node(settings=settings, spooler_processes=1)
    runs = [
        printed(run(node, commands, "parsed-%d" % n, arguments=arguments))
        for n, arguments in enumerate(["", "--tag a, --limit 3, -v 2", ""])
    ]
    # Each run gets fresh defaults: the list the previous run changed is not this run's.
    assert [r["tag"] for r in runs] == [
        ["changed by the run"],
        ["a", "changed by the run"],
        ["changed by the run"],
    ]
    assert [(r["limit"], r["verbosity"], r["skip_checks"]) for r in runs] == [
        (1, 1, True),
        (3, 2, True),
        (1, 1, True),
    ]
    if settings is REUSE:
        # One child served the three runs; it built the parser at its first run only.
        assert len({r["pid"] for r in runs}) == 1
        assert [r["builds_here"] for r in runs] == [1, 1, 1]
    else:
        # A fresh child per run, none of which built the parser: the fork server did.
        assert len({r["pid"] for r in runs}) == 3
        assert [r["builds_here"] for r in runs] == [0, 0, 0]


@MODES
def test_a_bad_argument_ends_the_run_with_its_message(uwsgi_node, commands, settings):
    node = uwsgi_node(settings=settings, spooler_processes=1)
    report = run(node, commands, "bad", arguments="--limit many")
    assert "CommandError: Error: argument --limit: invalid int value: 'many'" in log_texts(report)
    assert report.end_kind == EndKind.CRASHED and "exception: CommandError" in report.end_reason
    # The next run is unaffected.
    assert printed(run(node, commands, "good", arguments="--limit 2"))["limit"] == 2


def test_a_parser_that_cannot_be_built_outside_a_run_is_built_by_each_run(uwsgi_node, commands):
    node = uwsgi_node(spooler_processes=1)
    runs = [printed(run(node, commands, "late-%d" % n, "tm_parsed_late", "--tag b")) for n in range(2)]
    assert [(r["tag"], r["builds_here"]) for r in runs] == [(["b", "changed by the run"], 1)] * 2


@MODES
def test_a_parser_that_reads_the_database_is_built_by_each_run(uwsgi_node, commands, settings):
    node = uwsgi_node(settings=settings, spooler_processes=1)
    # Tasks made after the node started, each naming itself: its parser must see them.
    first = printed(run(node, commands, "db-one", "tm_parsed_db", "--task db-one"))
    second = printed(run(node, commands, "db-two", "tm_parsed_db", "--task db-two"))
    assert first["builds_here"] == 1
    assert second["builds_here"] == (2 if settings is REUSE else 1)

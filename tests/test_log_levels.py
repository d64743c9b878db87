"""Which logging records a run captures, and what the project's handlers get (issue 16, item 1).

Loggers whose level comes from the root logger are captured from
``TASKMANAGER_LOG_LEVEL`` (INFO by default), also in a project without
``LOGGING`` (root at WARNING); loggers with a level of their own keep it; the
project's handlers receive exactly what they receive when the command runs
outside the task manager. Runs go through real uWSGI nodes.
"""

import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from taskmanager import logcapture

from .support.admin import run_to_end
from .support.uwsgi_server import ROOT, node_env

pytestmark = pytest.mark.django_db(transaction=True)

#: What the command tm_loglevels logs, and what the log of a stock project's run shows of it.
INFO_AND_UP = ["inherited info", "inherited warning", "quiet info", "quiet warning", "root info"]


def logged(report) -> list[str]:
    """The texts of the report's logging records, in order."""
    return list(report.log_lines.filter(stream="logging").order_by("seq").values_list("text", flat=True))


def project_logging(directory) -> dict:
    """A project's LOGGING: files on the root logger and on "testapp", one logger set to WARNING."""
    fmt = {"format": "%(name)s %(levelname)s %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": fmt},
        "handlers": {
            "root_file": {
                "class": "logging.FileHandler",
                "filename": str(directory / "root.log"),
                "formatter": "plain",
            },
            "testapp_file": {
                "class": "logging.FileHandler",
                "filename": str(directory / "testapp.log"),
                "formatter": "plain",
            },
        },
        # The root logger keeps Python's WARNING.
        "root": {"handlers": ["root_file"]},
        "loggers": {
            "testapp": {"handlers": ["testapp_file"]},
            "testapp.quiet": {"level": "WARNING"},
            "testapp.chatty": {"level": "DEBUG"},
        },
    }


def lines_of_testapp(path) -> list[str]:
    """The lines of a log file written by the test app's loggers (the node's own lines left out)."""
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.startswith("testapp.")]


def run_outside(settings: dict) -> None:
    """Run tm_loglevels with manage.py's machinery, without the task manager's capture."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **node_env(settings)}
    subprocess.run(
        [sys.executable, "-m", "django", "tm_loglevels"],
        cwd=str(ROOT),
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_a_stock_project_captures_info_records(uwsgi_node, commands):
    """No LOGGING: the root logger is at WARNING, yet module loggers' INFO records are in the log."""
    node = uwsgi_node(settings={"LOGGING": {}}, spooler_processes=1)
    _task, report = run_to_end(node.admin, commands, "stock logging", "tm_loglevels")
    assert report.result == "WARNINGS"
    assert logged(report) == INFO_AND_UP
    # The records keep their levels: the INFO ones count as nothing.
    assert report.warnings == 2 and report.errors == 0


def test_log_level_setting_raises_the_capture_level(uwsgi_node, commands):
    node = uwsgi_node(settings={"LOGGING": {}, "TASKMANAGER_LOG_LEVEL": "WARNING"}, spooler_processes=1)
    _task, report = run_to_end(node.admin, commands, "warnings only", "tm_loglevels")
    assert logged(report) == ["inherited warning", "quiet warning"]


def test_a_log_level_that_names_no_level_is_said_in_the_log(uwsgi_node, commands):
    """uWSGI runs no system checks: the run captures from INFO and says why in a warning line."""
    node = uwsgi_node(settings={"LOGGING": {}, "TASKMANAGER_LOG_LEVEL": "VERBOSE"}, spooler_processes=1)
    _task, report = run_to_end(node.admin, commands, "bad level", "tm_loglevels")
    assert logged(report) == INFO_AND_UP
    (line,) = report.log_lines.filter(stream="taskmanager")
    assert line.level == logcapture.WARNING
    assert line.text.startswith("TASKMANAGER_LOG_LEVEL is 'VERBOSE', which is no logging level")


@pytest.mark.parametrize("value", ["VERBOSE", -1, 2.5, None])
def test_a_log_level_that_names_no_level_fails_the_checks(value):
    with override_settings(TASKMANAGER_LOG_LEVEL=value):
        found = [m for m in run_checks() if m.id == "taskmanager.E001"]
    assert [m.obj for m in found] == ["TASKMANAGER_LOG_LEVEL"]
    assert "a logging level name such as 'INFO'" in found[0].msg


def test_project_levels_and_handlers_are_kept(uwsgi_node, commands, tmp_path):
    """Loggers with a level keep it; the project's handlers get what they get outside the task manager."""
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    outside.mkdir()
    inside.mkdir()
    run_outside({"LOGGING": project_logging(outside)})
    before = {name: lines_of_testapp(outside / name) for name in ("root.log", "testapp.log")}
    expected = [
        "testapp.loglevels WARNING inherited warning",
        "testapp.quiet WARNING quiet warning",
        "testapp.chatty DEBUG chatty debug",
    ]
    assert before == {"root.log": expected, "testapp.log": expected}

    node = uwsgi_node(settings={"LOGGING": project_logging(inside)}, spooler_processes=1)
    _task, report = run_to_end(node.admin, commands, "project logging", "tm_loglevels")
    # testapp.quiet is set to WARNING: its INFO record stays out; testapp.chatty
    # is set to DEBUG: its DEBUG record is in; the others from INFO.
    assert logged(report) == [
        "inherited info",
        "inherited warning",
        "quiet warning",
        "chatty debug",
        "root info",
    ]
    after = {name: lines_of_testapp(inside / name) for name in ("root.log", "testapp.log")}
    assert after == before


@pytest.mark.parametrize(
    "value, level",
    [
        ("INFO", 20),
        ("warning", 30),
        (" DEBUG ", 10),
        (0, 0),
        (25, 25),
        ("VERBOSE", None),
        (-1, None),
        (True, None),
        (20.0, None),
        (None, None),
        ("20", None),
    ],
)
def test_log_level_values(value, level):
    assert logcapture.capture_level(value) == level

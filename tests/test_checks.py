"""System checks: Django-side through the check framework, uWSGI-side through real uWSGI instances."""

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from taskmanager import checks
from taskmanager.conf import DEFAULTS
from taskmanager.models import SpoolerHeartbeat

from .support.objects import make_task
from .support.spool import node_name
from .support.uwsgi_server import ROOT, UwsgiServer
from .support.waits import wait_for


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages if m.id.startswith("taskmanager."))


def tm_messages(**kwargs):
    return [m for m in run_checks(**kwargs) if m.id.startswith("taskmanager.")]


# -- settings --------------------------------------------------------------------------


def test_test_settings_pass_every_check():
    assert tm_messages() == []
    call_command("check")  # raises SystemCheckError on any error


def test_every_default_has_a_rule_that_accepts_it():
    assert set(checks.RULES) == set(DEFAULTS)
    for name, rule in checks.RULES.items():
        assert rule(DEFAULTS[name]) is None, name


@override_settings(
    TASKMANAGER_REPORTS_KEPT=0,
    TASKMANAGER_STOP_GRACE_SECONDS="3",
    TASKMANAGER_ALLOW_UNSAFE_COMMANDS="yes",
    TASKMANAGER_DEFAULT_TIMEOUT=-5,
    TASKMANAGER_UNSAFE_COMMANDS="flush",
    TASKMANAGER_NOTIFY_ON=["FAILED", "BROKEN"],
    TASKMANAGER_NOTIFY_WEBHOOK_URL="ftp://example.com/hook",
    TASKMANAGER_LOG_BATCH_LINES=True,
)
def test_invalid_values_are_errors_naming_the_setting():
    found = [m for m in tm_messages() if m.id == "taskmanager.E001"]
    assert sorted(m.obj for m in found) == sorted(
        "TASKMANAGER_" + n
        for n in [
            "REPORTS_KEPT",
            "STOP_GRACE_SECONDS",
            "ALLOW_UNSAFE_COMMANDS",
            "DEFAULT_TIMEOUT",
            "UNSAFE_COMMANDS",
            "NOTIFY_ON",
            "NOTIFY_WEBHOOK_URL",
            "LOG_BATCH_LINES",
        ]
    )
    by_name = {m.obj: m for m in found}
    assert "an integer of at least 1" in by_name["TASKMANAGER_REPORTS_KEPT"].msg
    assert "'BROKEN'" not in by_name["TASKMANAGER_NOTIFY_ON"].hint
    assert all(m.hint for m in found)
    with pytest.raises(SystemCheckError, match="taskmanager.E001"):
        call_command("check")


@pytest.mark.parametrize(
    "path, words",
    [("nowhere.Backend", "cannot be imported"), ("taskmanager.models.Task", "is not a subclass")],
)
def test_backend_must_be_an_importable_backend(path, words):
    with override_settings(TASKMANAGER_BACKEND=path):
        found = [m for m in tm_messages() if m.id == "taskmanager.E002"]
    assert len(found) == 1 and words in found[0].msg


@override_settings(TASKMANAGER_REPORT_KEPT=3)
def test_misspelt_setting_is_named_with_a_suggestion():
    (warning,) = [m for m in tm_messages() if m.id == "taskmanager.W001"]
    assert warning.obj == "TASKMANAGER_REPORT_KEPT"
    assert warning.hint == "Did you mean TASKMANAGER_REPORTS_KEPT?"


def test_working_dir_that_does_not_exist_is_a_warning():
    with override_settings(TASKMANAGER_WORKING_DIR="/nonexistent/taskmanager-dir"):
        assert ids(tm_messages()) == ["taskmanager.W002"]
    with override_settings(TASKMANAGER_WORKING_DIR=str(ROOT)):
        assert tm_messages() == []


def test_timing_settings_that_contradict_each_other():
    with override_settings(TASKMANAGER_HEARTBEAT_SECONDS=10, TASKMANAGER_HEARTBEAT_TIMEOUT=15):
        assert ids(tm_messages()) == ["taskmanager.W009"]
    with override_settings(TASKMANAGER_RECOVERY_SECONDS=0):
        assert ids(tm_messages()) == ["taskmanager.W003"]
    with override_settings(TASKMANAGER_RECOVERY_SECONDS=0, TASKMANAGER_NODE_TIMEOUT=0):
        assert tm_messages() == []


def test_time_zone_the_scheduler_cannot_honour():
    with override_settings(USE_TZ=False):
        assert ids(tm_messages()) == ["taskmanager.E003"]
    with override_settings(TIME_ZONE="Mars/Olympus_Mons"):
        found = tm_messages()
    assert ids(found) == ["taskmanager.E004"]
    assert "Mars/Olympus_Mons" in found[0].msg


def test_slack_configuration_needs_token_and_channel():
    with override_settings(TASKMANAGER_NOTIFY_SLACK_TOKEN="xoxb-1"):
        assert ids(tm_messages()) == ["taskmanager.W008"]
    with override_settings(TASKMANAGER_NOTIFY_SLACK_TOKEN="xoxb-1", TASKMANAGER_NOTIFY_SLACK_CHANNEL="#ops"):
        assert tm_messages() == []  # slack_sdk is installed with the test extra


def test_sqlite_without_wal_immediate_and_timeout(tmp_path):
    # An SQLite database of its own, whatever the suite runs on (PostgreSQL, MariaDB).
    plain = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "plain.sqlite3"), "OPTIONS": {}}
    with pytest.warns(UserWarning, match="DATABASES"), override_settings(DATABASES={"default": plain}):
        found = tm_messages()
    assert ids(found) == ["taskmanager.W004", "taskmanager.W005", "taskmanager.W006"]
    assert all("DATABASES['default']['OPTIONS']" in m.hint for m in found)


def test_sqlite_journal_mode_is_asked_only_with_databases(transactional_db):
    # Without databases nothing is queried; with them, the test file is in WAL mode.
    assert tm_messages(databases=["default"]) == []


def test_check_command_reports_a_database_file_not_in_wal_mode(tmp_path):
    """``manage.py check --database default`` on a file in rollback-journal mode, in a fresh process."""
    path = tmp_path / "plain.sqlite3"
    sqlite3.connect(path).execute("create table t (x)").connection.close()
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TM_TEST_SETTINGS": json.dumps({"DATABASES": {"default": database}}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "check", "--database", "default"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    for check_id in ("W004", "W005", "W006", "W007"):
        assert "taskmanager.%s" % check_id in output, output
    assert "journal mode 'delete'" in output


# -- uWSGI options as data (the function the running processes use) ----------------


def test_uwsgi_checks_report_nothing_outside_uwsgi():
    assert checks.uwsgi_messages() == []
    assert checks.check_uwsgi() == []


def good_opt(spool_dir) -> dict:
    return {
        "master": True,
        "spooler": str(spool_dir).encode(),
        "spooler-processes": b"2",
        "spooler-frequency": b"1",
        "die-on-term": True,
    }


def test_uwsgi_option_values(tmp_path):
    assert checks.uwsgi_messages(good_opt(tmp_path)) == []
    opt = {**good_opt(tmp_path), "spooler-frequency": b"often", "spooler-processes": [b"1", b"4"]}
    # uWSGI keeps the last value of a repeated option; a list is read the same way.
    assert ids(checks.uwsgi_messages(opt)) == ["taskmanager.E012"]


def test_missing_spool_directory(tmp_path):
    opt = good_opt(tmp_path / "gone")
    assert ids(checks.uwsgi_messages(opt)) == ["taskmanager.E015"]


def test_spool_directory_not_writable_by_the_process_user():
    """Run the check in a child process that gives up root for 'nobody' (uWSGI's 'uid' option)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to change user")  # pragma: no cover - the suite runs as root here
    # pytest's tmp_path is private to root; a directory 'nobody' can reach but not write:
    base = Path(tempfile.mkdtemp(prefix="tm-spool-ro-"))
    os.chmod(base, 0o755)
    spool = base / "spool"
    spool.mkdir(mode=0o755)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(65534)
            os.setuid(65534)
            found = ids(checks.uwsgi_messages(good_opt(spool)))
            os.write(write_fd, json.dumps(found).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd) as pipe:
        assert json.loads(pipe.read()) == ["taskmanager.E016"]


def test_spooler_import_given_as_a_file(tmp_path):
    opt = {**good_opt(tmp_path), "lazy-apps": True, "spooler-import": str(tmp_path / "missing.py").encode()}
    assert ids(checks.uwsgi_messages(opt)) == ["taskmanager.E014"]
    (tmp_path / "present.py").write_text("")
    opt["spooler-import"] = str(tmp_path / "present.py").encode()
    assert checks.uwsgi_messages(opt) == []


# -- real uWSGI instances started with bad configurations ---------------------------------

LINE_RE = re.compile(r"^(taskmanager\.[EW]\d{3}) \((worker \d+|spooler pid \d+)\): ", re.M)
#: The one line worker 1 writes to the uWSGI log once it ran the checks.
SUMMARY_RE = re.compile(r"^taskmanager: system checks ran at uWSGI start \(worker 1\): (.*)$", re.M)
#: How the summary ends where the tests run: W014 (uWSGI as root) is silenced by tests/settings.py.
SILENCED_HERE = " (1 silenced)." if os.geteuid() == 0 else "."


def start_and_collect(uwsgi_node, spooler_logs=True, **kwargs) -> tuple[UwsgiServer, dict]:
    """Start a uWSGI node; return it and {check id: set of kinds of process that logged it}.

    Waits until worker 1 has written its summary line (and, when it found
    problems, until a spooler logged its own, if ``spooler_logs`` and the
    node has spoolers). The summary must name the ids found.
    """
    instance = uwsgi_node(login=False, **kwargs)
    needs_spooler = spooler_logs and instance.has_spooler

    def logged():
        text = instance.log()
        summary = SUMMARY_RE.search(text)
        if summary is None:
            return None
        found = {}
        for check_id, who in LINE_RE.findall(text):
            found.setdefault(check_id, set()).add(who.split()[0])
        if found and needs_spooler and not any("spooler" in who for who in found.values()):
            return None
        return found or {"none": set()}, summary.group(1)

    try:
        found, summary = wait_for(logged, timeout=60, message="the uWSGI checks in the log")
    except AssertionError:
        raise AssertionError(instance.log()[-5000:]) from None
    named = set(re.findall(r"taskmanager\.[EW]\d{3}", summary))
    assert named == set(found) - {"none"}, summary
    return instance, found


def test_test_server_configuration_passes_with_djangos_default_logging(uwsgi_node):
    """No LOGGING (root at WARNING): worker 1 still says, in one line, that the checks ran and passed."""
    instance, found = start_and_collect(uwsgi_node, settings={"LOGGING": {}})
    assert found == {"none": set()}, instance.log()
    assert SUMMARY_RE.findall(instance.log()) == ["no problem found" + SILENCED_HERE]
    assert instance.log().count("taskmanager: system checks") == 1


def test_an_instance_without_a_spooler_says_in_its_log_that_it_is_web_only(uwsgi_node):
    """Not a problem (a web node of several machines), but said: a forgotten spooler is not silent."""
    web_only = "taskmanager: this uWSGI instance has no spooler (web-only, TASKMANAGER_WEB_ONLY)"
    instance, found = start_and_collect(uwsgi_node, spooler_processes=0)
    assert found == {"none": set()}, instance.log()
    wait_for(lambda: web_only in instance.log(), timeout=60, message="the web-only line in the log")
    assert instance.log().count(web_only) == 1
    with_spooler, _found = start_and_collect(uwsgi_node)
    assert "this uWSGI instance has no spooler" not in with_spooler.log()


def test_weak_spooler_options_are_logged_by_worker_and_spooler(uwsgi_node):
    instance, found = start_and_collect(
        uwsgi_node,
        spooler_processes=1,
        drop_args=("--die-on-term", "--spooler-frequency"),
        extra_args=["--spooler-harakiri", "60"],
    )
    expected = {"taskmanager.W010", "taskmanager.W011", "taskmanager.W012", "taskmanager.W013"}
    assert set(found) == expected, instance.log()
    assert all(who == {"worker", "spooler"} for who in found.values()), found
    # Warnings at WARNING with their hint, e.g. the default spooler-frequency.
    assert "HINT: Set 'spooler-frequency = 1'" in instance.log()


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # Not a web-only node by the settings: no spooler is an error (detected, it is none).
        (dict(spooler_processes=0, settings={"TASKMANAGER_WEB_ONLY": False}), {"taskmanager.E011"}),
        # The spoolers never load Django here: only the workers can tell.
        (dict(extra_args=["--lazy-apps"], spooler_logs=False), {"taskmanager.E013"}),
        (
            dict(extra_args=["--lazy-apps", "--spooler-import", "no_such_module.wsgi"], spooler_logs=False),
            {"taskmanager.E014"},
        ),
        (dict(extra_args=["--spooler-frequency", "0"]), {"taskmanager.E012"}),
    ],
    ids=["no-spooler", "lazy-without-spooler-import", "bad-spooler-import", "frequency-0"],
)
def test_broken_uwsgi_configurations_are_logged_as_errors(uwsgi_node, kwargs, expected):
    instance, found = start_and_collect(uwsgi_node, **kwargs)
    assert set(found) == expected, instance.log()
    assert set().union(*found.values()) >= {"worker"}


def test_no_master_is_logged(uwsgi_node):
    instance = uwsgi_node(login=False, spooler_processes=0, drop_args=("--master",))
    wait_for(lambda: "taskmanager.E010 (worker" in instance.log(), timeout=60, message="E010 in the log")


def test_problems_reach_the_uwsgi_log_with_djangos_default_logging(uwsgi_node):
    """No LOGGING setting: Python prints the warnings to stderr, which uWSGI writes to its log.

    The summary line is written to the uWSGI log directly, once, by worker 1.
    """
    instance = uwsgi_node({"LOGGING": {}}, login=False, spooler_processes=1)
    line = re.compile(r"^taskmanager\.W011 \(worker 1\): uWSGI runs a single spooler process.*HINT: ", re.M)
    wait_for(lambda: line.search(instance.log()), timeout=60, message="W011 in the uWSGI log")
    wait_for(
        lambda: "taskmanager.W011 (spooler pid" in instance.log(), timeout=60, message="the spooler's W011"
    )
    wait_for(lambda: SUMMARY_RE.search(instance.log()), timeout=60, message="the summary line")
    assert SUMMARY_RE.findall(instance.log()) == [
        "1 warning: taskmanager.W011 (each logged with its hint)" + SILENCED_HERE
    ]


def test_settings_problems_are_in_the_start_line(uwsgi_node):
    """Worker 1 runs the settings checks too: a value uWSGI would otherwise never report."""
    instance, found = start_and_collect(
        uwsgi_node, settings={"LOGGING": {}, "TASKMANAGER_LOG_LEVEL": "VERBOSE"}, spooler_logs=False
    )
    assert found == {"taskmanager.E001": {"worker"}}, instance.log()
    assert SUMMARY_RE.findall(instance.log()) == [
        "1 error: taskmanager.E001 (each logged with its hint)" + SILENCED_HERE
    ]
    assert "taskmanager.E001 (worker 1): TASKMANAGER_LOG_LEVEL is 'VERBOSE'" in instance.log()


def test_lazy_apps_with_spooler_import_runs_tasks_checks(uwsgi_node):
    """With lazy-apps and a correct spooler-import, the spoolers load Django and run their checks.

    A spooler that finds no problem says so at DEBUG, which this node's LOGGING shows.
    """
    debug = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {"taskmanager.checks": {"level": "DEBUG"}},
    }
    instance, found = start_and_collect(
        uwsgi_node, settings={"LOGGING": debug}, extra_args=["--lazy-apps", "--spooler-import", "tests.wsgi"]
    )
    assert found == {"none": set()}, instance.log()
    wait_for(
        lambda: "the uWSGI checks found no problem (spooler pid" in instance.log(),
        timeout=60,
        message="the spoolers' checks",
    )


# -- the admin banner ------------------------------------------------------------------


def test_banner_when_the_spooler_never_reported(uwsgi_node, commands):
    """A web node spooling into a directory no spooler serves shows the banner on every page."""
    spool = tempfile.mkdtemp(prefix="tm-orphan-spool-")
    instance = uwsgi_node(spooler_processes=0, extra_args=["--spooler-external", spool])
    client = instance.admin
    task = make_task(commands, "banner")
    for path in (
        "/admin/taskmanager/task/",
        "/admin/taskmanager/task/%d/change/" % task.pk,
        "/admin/taskmanager/",
        "/admin/taskmanager/djangotaskresult/",  # where a @task user looks
    ):
        page = client.get(path)
        assert page.status == 200
        assert "No uWSGI spooler has reported yet: tasks will not run." in page.text, path
    # A heartbeat from that node, older than NODE_TIMEOUT, names the time it was last seen.
    from datetime import timedelta

    from django.utils import timezone

    node = node_name(spool)
    SpoolerHeartbeat.objects.create(node=node, last_seen=timezone.now() - timedelta(hours=2))
    page = client.get("/admin/taskmanager/task/")
    assert "No uWSGI spooler has reported since" in page.text
    assert "tasks will not run" in page.text
    # A fresh one removes the banner.
    SpoolerHeartbeat.objects.filter(node=node).update(last_seen=timezone.now())
    page = client.get("/admin/taskmanager/task/")
    assert "tasks will not run" not in page.text


def test_no_banner_while_the_spooler_reports(uwsgi_node):
    """A node's spoolers record heartbeats (at start and on the recovery timer, every second here).

    A node of its own: the session server's heartbeat went with the previous
    test's data, and its next tick comes up to TASKMANAGER_RECOVERY_SECONDS (30 s) later.
    """
    node = uwsgi_node({"TASKMANAGER_RECOVERY_SECONDS": 1})
    wait_for(
        lambda: "tasks will not run" not in node.admin.get("/admin/taskmanager/task/").text,
        timeout=60,
        message="the spooler heartbeat to clear the banner",
    )
    assert SpoolerHeartbeat.objects.filter(node=node_name(node.spool_dir)).exists()


def test_heartbeat_timer_keeps_the_heartbeat_fresh(uwsgi_node):
    """The uWSGI timer targeted at the spoolers records the heartbeat again and again."""
    instance = uwsgi_node({"TASKMANAGER_RECOVERY_SECONDS": 1}, http=False)
    node = node_name(instance.spool_dir)
    first = wait_for(
        lambda: SpoolerHeartbeat.objects.filter(node=node).values_list("last_seen", flat=True).first(),
        timeout=60,
        message="a first heartbeat",
    )
    wait_for(
        lambda: SpoolerHeartbeat.objects.filter(node=node, last_seen__gt=first).exists(),
        timeout=60,
        message="a later heartbeat",
    )


# -- the documentation lists every setting and every check -----------------------------


def test_every_setting_is_documented_with_its_default():
    text = (ROOT / "docs" / "settings.rst").read_text()
    for name in DEFAULTS:
        assert re.search(r"^``TASKMANAGER_%s``\n    Default: " % name, text, re.M), name


def test_every_check_id_is_documented():
    sources = [ROOT / "taskmanager" / "checks.py", *(ROOT / "taskmanager").glob("*/checks.py")]
    used = set(re.findall(r'id="(taskmanager\.[EW]\d{3})"', "".join(p.read_text() for p in sources)))
    documented = set(
        re.findall(r"^(taskmanager\.[EW]\d{3})$", (ROOT / "docs" / "checks.rst").read_text(), re.M)
    )
    assert used and used == documented

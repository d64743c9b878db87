"""Reused children (``TASKMANAGER_RUNS_PER_CHILD``, issue 17): one process, several runs of one command.

Through a real uWSGI node with one spooler process: a child serves up to
``RUNS_PER_CHILD`` runs of the same command, each run with its own marker,
report, complete log and exit code, and none inheriting what the previous
one changed in the process; it is replaced after a run of another command,
a run that left a process or a thread behind, a stopped run, and past the
memory bound. By default every run gets a fresh child.
"""

import json
import os

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from taskmanager.models import EndKind, Report

from .support.admin import add_task, press, run_to_end
from .support.waits import finished_report, running_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

REUSE = {"TASKMANAGER_RUNS_PER_CHILD": 3}


def identity(report) -> dict:
    """What tm_pidenv printed first: its pid, marker, test variable and working directory."""
    # Its first JSON line: a line printed on fd 1 may be read before it (another pipe).
    return json.loads(
        report.log_lines.filter(text__startswith="{").order_by("seq").values_list("text", flat=True)[0]
    )


def run(node, commands, name, arguments="", command="tm_pidenv"):
    _task, report = run_to_end(node.admin, commands, name, command, arguments)
    return report, identity(report) if command == "tm_pidenv" else None


def test_a_child_serves_runs_of_one_command_each_its_own(uwsgi_node, commands, tmp_path):
    node = uwsgi_node(settings=REUSE, spooler_processes=1)
    first, one = run(node, commands, "one", '--set-env leak, --chdir %s, --tail "no newline"' % tmp_path)
    second, two = run(node, commands, "two", "--exit 3")
    third, three = run(node, commands, "three")
    assert one["pid"] == two["pid"] == three["pid"]
    # The report's pid is the process that ran it; each run has its own marker.
    assert first.pid == second.pid == third.pid == one["pid"]
    assert [one["marker"], two["marker"], three["marker"]] == [r.run_marker() for r in (first, second, third)]
    # What a run changed in the process is gone for the next one.
    assert two["var"] is None and two["cwd"] == one["cwd"] != str(tmp_path)
    # Each log is complete (a last line without a newline too), each exit code the run's own.
    assert list(first.log_lines.order_by("seq").values_list("text", flat=True))[-1] == "no newline"
    assert (first.end_kind, second.end_kind, second.exit_code, third.end_kind) == (
        EndKind.COMPLETED,
        EndKind.EXIT_CODE,
        3,
        EndKind.COMPLETED,
    )
    # The third run was its last: the fourth gets a new child, and so does another command.
    _fourth, four = run(node, commands, "four")
    assert four["pid"] != one["pid"]
    run(node, commands, "other command", command="tm_ok")
    _fifth, five = run(node, commands, "five")
    assert five["pid"] != four["pid"]


def test_a_child_is_replaced_after_a_run_that_left_something(uwsgi_node, commands):
    node = uwsgi_node(settings=REUSE, spooler_processes=1)
    # A subprocess still running when the command returned: killed, and the child replaced.
    report, _ = run(node, commands, "orphan", command="tm_orphan")
    orphan = int(report.log_lines.filter(text__startswith="orphan pid").get().text.split()[-1])
    assert not os.path.exists("/proc/%d" % orphan) or _zombie(orphan)
    assert report.log_lines.filter(text__contains="outlived it and were killed").exists()
    _r, after_orphan = run(node, commands, "after orphan")
    # A thread left running: the next run gets another child.
    _r, with_thread = run(node, commands, "thread", "--thread")
    assert with_thread["pid"] == after_orphan["pid"]
    _r, after_thread = run(node, commands, "after thread")
    assert after_thread["pid"] != with_thread["pid"]
    # A stopped run: its child is gone; the next run gets another.
    task = add_task(node.admin, commands, "stopped", "tm_pidenv", "--seconds 60")
    press(node.admin, task, "start")
    running = running_report(task)
    wait_for(lambda: running.log_lines.exists(), message="the run's first line")
    press(node.admin, task, "stop")
    stopped = finished_report(task)
    assert stopped.end_kind == EndKind.STOPPED
    _r, after_stop = run(node, commands, "after stop")
    assert after_stop["pid"] not in (identity(stopped)["pid"], after_thread["pid"])


def test_a_run_that_changes_its_umask_or_fds_leaves_the_next_run_its_own(uwsgi_node, commands, tmp_path):
    # A careless command loosens the umask, or points fd 1 and fd 2 at a file
    # (as one silencing a C library does): the next run, maybe another
    # person's, must create its files with the process's umask and write to
    # its own log, not into that file (nor crash the supervisor).
    node = uwsgi_node(settings=REUSE, spooler_processes=1)
    _r, one = run(node, commands, "umask", "--umask 0")
    _r, two = run(node, commands, "after umask")
    assert one["pid"] == two["pid"] and two["umask"] == one["umask"] != 0
    sink = tmp_path / "sink.txt"
    first, three = run(node, commands, "redirect", "--redirect %s, --print mine" % sink)
    second, four = run(node, commands, "after redirect", "--print secret-of-the-next-run")
    assert three["pid"] == two["pid"] != four["pid"]
    lines = list(second.log_lines.order_by("seq").values_list("text", flat=True))
    assert "secret-of-the-next-run" in lines, lines
    assert sink.read_text() == "mine\n"
    assert (first.end_kind, second.end_kind) == (EndKind.COMPLETED, EndKind.COMPLETED)


def test_what_a_thread_writes_after_its_run_never_reaches_the_next_run(uwsgi_node, commands):
    # A thread of the command writes on fd 1 a moment after the run ended and
    # then ends: its line belongs to its own run's log, or to none, never to
    # the next run's (another task, maybe another person's). The moments are
    # spread over the time the supervisor takes to record a run's end: before
    # the fix, some landed between the pipes' last read and the thread check.
    node = uwsgi_node(settings={"TASKMANAGER_RUNS_PER_CHILD": 100}, spooler_processes=1)
    for i, after in enumerate((0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05)):
        run(node, commands, "late %d" % i, "--late secret-%d, --late-after %s" % (i, after))
        nxt, _ = run(node, commands, "next %d" % i)
        lines = list(nxt.log_lines.values_list("text", flat=True))
        assert not [line for line in lines if "secret" in line], (after, lines)


def test_past_the_memory_bound_a_child_is_replaced(uwsgi_node, commands):
    node = uwsgi_node(settings={**REUSE, "TASKMANAGER_CHILD_MAX_MEMORY_MB": 1}, spooler_processes=1)
    _r, one = run(node, commands, "big one")
    _r, two = run(node, commands, "big two")
    assert one["pid"] != two["pid"]


def test_every_run_has_a_fresh_child_by_default(server, admin_http, commands):
    _t, first = run_to_end(admin_http, commands, "fresh one", "tm_pidenv")
    _t, second = run_to_end(admin_http, commands, "fresh two", "tm_pidenv")
    assert identity(first)["pid"] != identity(second)["pid"]
    assert Report.objects.filter(pk__in=[first.pk, second.pk], end_kind=EndKind.COMPLETED).count() == 2


@pytest.mark.parametrize("name", ["TASKMANAGER_RUNS_PER_CHILD", "TASKMANAGER_CHILD_MAX_MEMORY_MB"])
@pytest.mark.parametrize("value", [0, "2", 1.5, None])
def test_reuse_settings_are_checked(name, value):
    with override_settings(**{name: value}):
        assert [m.obj for m in run_checks() if m.level >= 40 and m.obj == name] == [name]


def _zombie(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True

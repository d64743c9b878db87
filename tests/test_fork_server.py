"""The fork server of each spooler process (issue 17): who forks the runs' children, and its failures.

A spooler process has the runs' children forked by a fork server of its own
(``taskmanager/runner/forkserver.py``): a fresh child per run, one fork
server per spooler process. These tests drive real uWSGI nodes and kill its
processes: the fork server mid-run (the run ends as crashed, nothing of it
is left, the next run works through a new fork server) and the spooler (the
fork server and the command die with it).
"""

import os
import signal

import pytest

from taskmanager.models import EndKind, Report, Task

from .support.admin import add_task, press, start_running
from .support.objects import log_texts
from .support.procs import children, gone, live_spooler_pids, parent_pid
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def fork_server_of(report: Report) -> int:
    """The pid of the process that forked the run's child: the fork server, a child of the supervisor."""
    server = parent_pid(report.pid)
    assert server is not None and server != report.supervisor_pid
    assert parent_pid(server) == report.supervisor_pid
    return server


def test_each_run_gets_a_fresh_child_from_the_spoolers_fork_server(uwsgi_node, commands):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    (spooler,) = live_spooler_pids(instance)
    pids, servers = [], []
    for n in range(3):
        task, report = start_running(client, commands, "fresh-%d" % n, "tm_sleep", "--seconds 60, --tick 0.1")
        assert report.supervisor_pid == spooler
        servers.append(fork_server_of(report))
        pids.append(report.pid)
        press(client, task, "stop")
        assert finished_report(task).end_reason.startswith("stopped by user")
    # A fresh child per run, all forked by the one fork server of the spooler.
    assert len(set(pids)) == 3
    assert len(set(servers)) == 1
    assert children(spooler) == servers[:1]
    # A fork server that died between two runs is replaced at the next one.
    os.kill(servers[0], signal.SIGKILL)
    wait_for(lambda: gone(servers[0]), message="the fork server to die")
    task, report = start_running(client, commands, "after-idle-death", "tm_sleep", "--seconds 60, --tick 0.1")
    assert fork_server_of(report) != servers[0]
    press(client, task, "stop")
    assert finished_report(task).end_reason.startswith("stopped by user")
    assert servers[0] not in children(spooler)


@pytest.mark.parametrize("setsid", [False, True], ids=["in-group", "setsid"])
def test_fork_server_killed_mid_run_ends_the_run_and_the_next_one_works(
    uwsgi_node, commands, setsid, tmp_path
):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    (spooler,) = live_spooler_pids(instance)
    arguments = "--count 1, --linger 120" + (", --setsid" if setsid else "")
    task, report = start_running(client, commands, "server-killed-%s" % setsid, "tm_orphan", arguments)
    wait_for(lambda: log_texts(report), message="the orphan's pid in the log")
    orphan = int(log_texts(report)[0].split()[-1])
    server = fork_server_of(report)

    os.kill(server, signal.SIGKILL)
    report = finished_report(task)
    assert (report.result, report.end_kind) == ("FAILED", EndKind.CRASHED), log_texts(report)
    assert any("the fork server (pid %d) died" % server in t for t in log_texts(report)), log_texts(report)
    # Nothing of the run is left: the command, its orphan; the dead fork server is reaped.
    wait_for(lambda: gone(report.pid), message="the command to be gone")
    wait_for(lambda: gone(orphan), message="the orphan to be killed")
    assert gone(server) and server not in children(spooler)
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    # The spooler lives on, and its next run goes through a new fork server.
    assert live_spooler_pids(instance) == [spooler]
    release = tmp_path / "release"
    arguments = "--count 0, --brief 1, --linger 120, --until %s" % release
    other, report = start_running(client, commands, "after-server-%s" % setsid, "tm_orphan", arguments)
    assert fork_server_of(report) != server
    release.touch()
    assert finished_report(other).result == "OK"


def test_spooler_killed_takes_its_fork_server_and_the_command_down(uwsgi_node, commands):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    task, report = start_running(client, commands, "spooler-killed", "tm_sleep", "--seconds 120, --tick 0.2")
    server = fork_server_of(report)

    os.kill(report.supervisor_pid, signal.SIGKILL)
    # PDEATHSIG, chained: spooler -> fork server -> command.
    wait_for(lambda: gone(server), message="the fork server to die with its spooler")
    wait_for(lambda: gone(report.pid), message="the command to die with its fork server")
    report = finished_report(task)
    assert (report.result, report.end_reason) == ("FAILED", "interrupted")
    # The new spooler process runs the next task through a fork server of its own.
    other = add_task(client, commands, "after-spooler-killed", "tm_ok")
    press(client, other, "start")
    assert finished_report(other).result == "OK"

"""The fork server of each spooler process (issue 17): who forks the runs' children, and its failures.

A spooler process has the runs' children forked by a fork server of its own
(``taskmanager/runner/forkserver.py``): a fresh child per run, one fork
server per spooler process. These tests drive real uWSGI nodes and kill its
processes: the fork server mid-run (the run ends as crashed, nothing of it
is left, the next run works through a new fork server) and the spooler (the
fork server and the command die with it); and its spare child, forked before
the run it gets (``taskmanager/runner/spare.py``).
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from taskmanager import processes
from taskmanager.models import EndKind, Report, Task

from .support.admin import add_task, bulk_action, press, start_running
from .support.objects import log_texts
from .support.procs import (
    children,
    gone,
    heap_in_huge_pages_kib,
    live_spooler_pids,
    no_huge_page_collapse,
    page_frames_unreadable,
    parent_pid,
    state,
)
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
    # A fork server that died between two runs is replaced at the next one; its spare dies with it.
    spare = wait_for(lambda: only_child(servers[0]), message="the fork server's spare child")
    os.kill(servers[0], signal.SIGKILL)
    wait_for(lambda: gone(servers[0]) and gone(spare), message="the fork server and its spare to die")
    task, report = start_running(client, commands, "after-idle-death", "tm_sleep", "--seconds 60, --tick 0.1")
    assert fork_server_of(report) != servers[0]
    press(client, task, "stop")
    assert finished_report(task).end_reason.startswith("stopped by user")
    assert servers[0] not in children(spooler)
    assert spare not in children(spooler)  # re-parented here (a subreaper), and reaped


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


def only_child(pid: int) -> int | None:
    """The one child of ``pid``, or None while it has none or several."""
    found = children(pid)
    return found[0] if len(found) == 1 else None


def run_with_an_orphan(client, commands, name: str, release) -> tuple[Report, int]:
    """Start a run of ``tm_orphan`` that lingers until ``release`` exists; return its report and its orphan's pid."""
    arguments = "--count 1, --linger 120, --until %s" % release
    _task, report = start_running(client, commands, name, "tm_orphan", arguments)
    wait_for(lambda: log_texts(report), message="the orphan's pid in the log")
    return report, int(log_texts(report)[0].split()[-1])


def ended_with_its_orphan_swept(report: Report, orphan: int, release) -> None:
    release.touch()
    report = finished_report(report.task)
    assert (report.result, report.end_reason) == ("OK", "completed"), log_texts(report)
    assert "1 process(es) started by the command outlived it and were killed." in log_texts(report)
    assert gone(orphan)


def test_a_run_goes_to_the_spare_child_forked_before_it_and_its_orphans_are_still_swept(
    uwsgi_node, commands, tmp_path
):
    instance = uwsgi_node(spooler_processes=1)
    client = instance.admin
    (spooler,) = live_spooler_pids(instance)
    server = wait_for(lambda: only_child(spooler), message="the spooler's fork server")
    # Before any Start: the fork server's spare waits, already forked.
    spare = wait_for(lambda: only_child(server), message="the fork server's spare child")
    spare_started = processes.start_time(spare)

    report, orphan = run_with_an_orphan(client, commands, "spare", tmp_path / "first")
    # The run's child is that spare: its pid, and its own start time recorded as the run's identity.
    assert (report.pid, report.pid_started) == (spare, spare_started)
    assert parent_pid(report.pid) == server and children(server) == [spare]
    ended_with_its_orphan_swept(report, orphan, tmp_path / "first")

    # The next spare comes once the run's exit is reported (its orphan swept first), and is not killed as one.
    spare = wait_for(lambda: only_child(server), message="the next spare child")
    assert spare not in (report.pid, orphan)
    report, orphan = run_with_an_orphan(client, commands, "spare-again", tmp_path / "second")
    assert report.pid == spare
    ended_with_its_orphan_swept(report, orphan, tmp_path / "second")

    # A spare killed while it waits: the fork server reaps it, forks the next run's child on request.
    spare = wait_for(lambda: only_child(server), message="the third spare child")
    os.kill(spare, signal.SIGKILL)
    wait_for(lambda: children(server) == [], message="the killed spare to be reaped")
    report, orphan = run_with_an_orphan(client, commands, "spare-killed", tmp_path / "third")
    assert report.pid != spare and parent_pid(report.pid) == server
    ended_with_its_orphan_swept(report, orphan, tmp_path / "third")
    wait_for(lambda: only_child(server), message="a spare after the run that had none")
    assert only_child(spooler) == server


def test_a_run_handed_to_a_spare_finds_its_standard_streams_on_its_pipes(uwsgi_node, commands):
    """A spare sets up its stream objects before it gets a run (spare.py): they must be what a
    child forked for the run would make, objects of a pipe (not seekable), not of the file the
    fork server's fd 1 and 2 were (the uWSGI log) when they were made."""
    instance = uwsgi_node(spooler_processes=1)
    (spooler,) = live_spooler_pids(instance)
    server = wait_for(lambda: only_child(spooler), message="the spooler's fork server")
    spare = wait_for(lambda: only_child(server), message="the fork server's spare child")
    task = add_task(instance.admin, commands, "streams", "tm_pidenv")
    press(instance.admin, task, "start")
    report = finished_report(task)
    assert report.pid == spare
    identity = json.loads(log_texts(report)[0])
    assert identity["seekable"] == [False, False], identity


def test_a_run_handed_to_a_spare_runs_in_the_working_directory_as_it_is_at_the_run(
    uwsgi_node, commands, tmp_path
):
    """A spare prepared itself in the working directory long before its run (spare.py): a
    directory replaced meanwhile (renamed away, made again) must be the run's, as for a child
    forked for the run or a reused child (end_run), not the old one the spare sat in."""
    work = tmp_path / "work"
    work.mkdir()
    instance = uwsgi_node(spooler_processes=1, settings={"TASKMANAGER_WORKING_DIR": str(work)})
    (spooler,) = live_spooler_pids(instance)
    server = wait_for(lambda: only_child(spooler), message="the spooler's fork server")
    spare = wait_for(lambda: only_child(server), message="the fork server's spare child")
    wait_for(lambda: set_up_and_waiting(spare), message="the spare's setup, then its wait for a run")
    work.rename(tmp_path / "work-old")
    work.mkdir()
    task = add_task(instance.admin, commands, "replaced-dir", "tm_pidenv")
    press(instance.admin, task, "start")
    report = finished_report(task)
    assert report.pid == spare
    identity = json.loads(log_texts(report)[0])
    assert identity["cwd"] == str(work), identity


def set_up_and_waiting(pid: int) -> bool:
    """Whether the spare ``pid`` did its setup ahead (fd 0 on /dev/null, its first step) and sleeps (on its socket)."""
    return os.readlink("/proc/%d/fd/0" % pid) == os.devnull and state(pid) == b"S"


def test_runs_in_a_row_keep_their_spares_and_none_is_killed_as_an_orphan(uwsgi_node, commands):
    """Runs started together follow one another on each spooler, each asking for its child as soon
    as the last one's exit is reported, while the fork server forks the next spare: the run must go
    to that spare, never to a child forked beside it, whose end would sweep the spare as one of its
    orphans (it did, in most such bursts, in a version where the spooler handed runs to the spare
    itself, not tried again: bench/README.md)."""
    instance = uwsgi_node(spooler_processes=2)
    tasks = [Task.objects.create(name="row-%d" % n, command=commands["tm_ok"]) for n in range(60)]
    bulk_action(instance.admin, "start_tasks", *tasks)
    wait_for(
        lambda: Report.objects.filter(finished_datetime__isnull=False).count() == len(tasks),
        message="the %d runs to end" % len(tasks),
    )
    killed = [report.task.name for report in Report.objects.all() if "outlived it" in " ".join(log_texts(report))]
    assert killed == []
    for spooler in live_spooler_pids(instance):
        server = only_child(spooler)
        wait_for(lambda server=server: only_child(server), message="the spare of fork server %s" % server)


def skip_without_huge_pages(frames: bool = False) -> None:
    """Skip, saying why, where the fork server collapses nothing (or, with ``frames``, page frames cannot be read)."""
    reason = no_huge_page_collapse() or (page_frames_unreadable() if frames else None)
    if reason:
        pytest.skip(reason)


def test_collapse_heap_moves_a_processs_heap_into_huge_pages():
    """``hugepages.collapse_heap`` in a process of its own, its heap grown by 20 MB (Django set up: the package needs it)."""
    skip_without_huge_pages()
    code = (
        "import django, re\n"
        "django.setup()\n"
        "from taskmanager.runner.hugepages import collapse_heap\n"
        "heap = [bytearray(1000) for _ in range(20000)]\n"
        "huge = lambda: int(re.search(r'AnonHugePages:\\s+(\\d+)', open('/proc/self/smaps_rollup').read())[1])\n"
        "before = huge()\n"
        "print(before, collapse_heap(), huge())\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    before, collapsed, after = (int(field) for field in out.stdout.split())
    assert collapsed >= 8 << 20, out.stdout  # 20 MB of heap: several aligned 2 MiB regions
    assert after - before >= collapsed >> 10, out.stdout


def test_the_fork_server_and_the_runs_child_share_its_heap_in_huge_pages(uwsgi_node, commands):
    """The fork server collapses its heap before it forks (``taskmanager/runner/hugepages.py``): the
    run's child shares its huge pages, which Linux forks and unmaps in batches (or as one entry per
    2 MiB, where neither process wrote on it)."""
    skip_without_huge_pages(frames=True)
    instance = uwsgi_node(spooler_processes=1)
    task, report = start_running(instance.admin, commands, "huge", "tm_sleep", "--seconds 60, --tick 0.1")
    server = fork_server_of(report)
    for pid, who in ((server, "the fork server"), (report.pid, "the run's child")):
        kib = heap_in_huge_pages_kib(pid)
        assert kib >= 8192, "%s has %s KiB of its heap in huge pages" % (who, kib)
    press(instance.admin, task, "stop")
    assert finished_report(task).end_reason.startswith("stopped by user")


def test_the_fork_server_leaves_its_heap_alone_when_the_setting_says_so(uwsgi_node, commands):
    """``TASKMANAGER_FORK_SERVER_HUGE_PAGES = False``: no huge page in the fork server (the memory it costs is a choice)."""
    skip_without_huge_pages(frames=True)
    instance = uwsgi_node(settings={"TASKMANAGER_FORK_SERVER_HUGE_PAGES": False}, spooler_processes=1)
    task, report = start_running(instance.admin, commands, "no-huge", "tm_sleep", "--seconds 60, --tick 0.1")
    assert heap_in_huge_pages_kib(fork_server_of(report)) == 0
    press(instance.admin, task, "stop")
    assert finished_report(task).end_reason.startswith("stopped by user")

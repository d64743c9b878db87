"""The main job, end to end: admin Start -> real uWSGI spooler -> command -> Report."""

import json
import os

import pytest

from taskmanager.models import Report, Task

from .support.admin import add_task, press, run_to_end
from .support.objects import log_texts
from .support.procs import parent_pid
from .support.waits import finished_report, running_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_start_runs_command_in_spooler_child(server, admin_http, commands):
    task = add_task(admin_http, commands, "whoami", "tm_whoami")
    resp = press(admin_http, task, "start")
    assert resp.status == 200
    report = finished_report(task)
    assert report.result == "OK", list(report.log_lines.values_list("text", flat=True))
    assert report.end_reason == "completed"
    identity = json.loads(report.log_lines.get(seq=1).text)
    # Forked by the fork server of the spooler process that supervises the run.
    assert report.supervisor_pid in server.spooler_pids()
    assert identity["ppid"] != report.supervisor_pid
    assert parent_pid(identity["ppid"]) == report.supervisor_pid
    assert identity["pid"] == report.pid != os.getpid()
    assert identity["pgid"] == identity["pid"]
    assert report.host == identity["host"]
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert task.last_result == "OK"
    page = admin_http.get("/admin/taskmanager/task/%d/change/" % task.pk)
    assert "complete log with filters" in page.text
    assert "/admin/taskmanager/report/%d/log/" % report.pk in page.text


@pytest.mark.parametrize(
    "command, arguments, result, errors, warnings, reason",
    [
        ("tm_ok", "--lines 2, --word a, --word b", "OK", 0, 0, "completed"),
        ("tm_warn", "", "WARNINGS", 0, 2, "completed"),
        ("tm_error", "", "ERRORS", 2, 0, "completed"),
        ("tm_raise", "", "FAILED", 1, 0, "exception: ValueError"),
        ("tm_exit", "--code 1", "FAILED", 0, 0, "exit code 1"),
        ("tm_exit", "--code 3, --hard", "FAILED", 0, 0, "exit code 3"),
        ("tm_exit", "--code 0", "OK", 0, 0, "completed"),
    ],
)
def test_result_from_levels_and_outcome(
    server, admin_http, commands, command, arguments, result, errors, warnings, reason
):
    task, report = run_to_end(admin_http, commands, "t-" + command + arguments, command, arguments)
    assert (report.result, report.errors, report.warnings, report.end_reason) == (
        result,
        errors,
        warnings,
        reason,
    ), log_texts(report)
    task.refresh_from_db()
    assert (task.status, task.last_result, task.errors, task.warnings) == ("IDLE", result, errors, warnings)
    assert task.last_datetime == report.invocation_datetime
    assert Report.objects.filter(task=task).count() == 1
    # The spooler is still there and serves the next task.
    _, after = run_to_end(admin_http, commands, "next-" + command + arguments, "tm_ok")
    assert after.result == "OK"
    assert Report.objects.filter(task=task).count() == 1


def test_output_and_arguments_reach_the_report(server, admin_http, commands):
    task, report = run_to_end(
        admin_http, commands, "args", "tm_ok", "--lines 2, --word hello, --word 'big world'"
    )
    assert log_texts(report) == ["line 1 hello big world", "line 2 hello big world", "done"]
    assert report.command_line == "manage.py tm_ok --lines 2 --word hello --word 'big world'"
    levels = list(report.log_lines.order_by("seq").values_list("level", flat=True))
    assert levels == [20, 20, 25]


def test_raised_exception_is_in_the_log(server, admin_http, commands):
    task, report = run_to_end(admin_http, commands, "raise", "tm_raise")
    log = "\n".join(log_texts(report))
    assert "about to fail" in log
    assert "ValueError: boom from tm_raise" in log


def test_two_start_presses_give_one_run(server, admin_http, commands):
    # A run longer than any test (stopped below): the second press cannot
    # come after its end, however slow the machine.
    task = add_task(admin_http, commands, "twice", "tm_sleep", "--seconds 120, --tick 0.2")
    first = press(admin_http, task, "start")
    second = press(admin_http, task, "start")
    assert "was started" in first.text
    assert "already" in second.text
    # Stop once the run is claimed: a Stop that comes first ends the queued start with no run at all.
    running_report(task)
    press(admin_http, task, "stop")
    finished_report(task)
    task.refresh_from_db()
    assert task.status == "IDLE"
    assert Report.objects.filter(task=task).count() == 1


def test_stop_kills_a_command_that_ignores_sigterm(server, admin_http, commands):
    task = add_task(admin_http, commands, "stubborn", "tm_sleep", "--seconds 120, --ignore-term")
    press(admin_http, task, "start")
    running = running_report(task)
    resp = press(admin_http, task, "stop")
    assert "is being stopped" in resp.text
    report = finished_report(task)
    assert report.pk == running.pk
    assert report.result == "FAILED"
    assert report.end_reason == "stopped by user admin"
    assert report.stopped_by.username == "admin"
    with pytest.raises(ProcessLookupError):
        os.kill(running.pid, 0)
    task.refresh_from_db()
    assert task.status == "IDLE"


def test_stale_token_spool_file_runs_nothing(server, admin_http, commands):
    task = add_task(admin_http, commands, "stale", "tm_ok")
    press(admin_http, task, "start")
    finished_report(task)
    # Forge a spool file like ours with an outdated token, as if left over.
    from taskmanager.spooler.uwsgi import HANDLER_NAME

    body = b""
    for key, value in {
        b"ud_spool_func": HANDLER_NAME.encode(),
        b"task": str(task.pk).encode(),
        b"token": b"0" * 32,
        b"trigger": b"start",
    }.items():
        body += len(key).to_bytes(2, "little") + key + len(value).to_bytes(2, "little") + value
    packet = bytes([17]) + len(body).to_bytes(2, "little") + bytes([0]) + body
    path = server.spool_dir / "uwsgi_spoolfile_on_test_stale"
    path.write_bytes(packet)
    wait_for(lambda: not path.exists(), message="the stale spool file to be consumed")
    assert Report.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    assert task.status == "IDLE"


def test_inactive_command_refuses_start(server, admin_http, commands):
    task = add_task(admin_http, commands, "inactive", "tm_ok")
    commands["tm_ok"].active = False
    commands["tm_ok"].save()
    resp = press(admin_http, task, "start")
    assert "is not active" in resp.text
    task.refresh_from_db()
    assert task.status == "IDLE"
    assert not Report.objects.filter(task=task).exists()


def test_stop_clears_a_lost_run_now_entry(server, admin_http, commands):
    """A "run now" whose spool entry was lost answers "already queued" until recovered; Stop clears it."""
    task = add_task(admin_http, commands, "lost-run-now", "tm_ok")
    Task.objects.filter(pk=task.pk).update(run_now_token="f" * 32)
    assert "already queued" in press(admin_http, task, "run-now").text
    assert "queued run is cancelled" in press(admin_http, task, "stop").text
    assert "will run now" in press(admin_http, task, "run-now").text
    report = finished_report(task)
    assert report.trigger == "run now"
    assert report.result == "OK"


def test_a_start_while_every_spooler_is_busy_runs_once_one_is_free(uwsgi_node, commands):
    """``uwsgi.spool()`` wakes idle spooler processes only: the Start wakes the busy one too.

    Its entry runs when the current run ends, not at the next directory scan
    (every ``spooler-frequency`` seconds, 600 here; no recovery timer either).
    """
    node = uwsgi_node(
        settings={"TASKMANAGER_RECOVERY_SECONDS": 0},
        spooler_processes=1,
        drop_args=("--spooler-frequency",),
        extra_args=["--spooler-frequency", "600"],
    )
    busy = add_task(node.admin, commands, "busy", "tm_sleep", "--seconds 4, --tick 0.2")
    press(node.admin, busy, "start")
    running = running_report(busy)
    waiting = add_task(node.admin, commands, "waiting", "tm_ok")
    press(node.admin, waiting, "start")
    # Spooled while the only spooler was busy (else this test proves nothing).
    running.refresh_from_db()
    assert running.finished_datetime is None
    report = finished_report(waiting, timeout=120)
    assert report.finished_datetime > finished_report(busy).finished_datetime

"""A hostile or unlucky user and operator, through the real uWSGI server.

Bad input (crafted ids, query strings, arguments and schedules), commands
that misbehave (tests/testapp/management/commands/tm_hostile.py), buttons
pressed from many threads at once, and a whole server killed with SIGKILL and
started again on the same spool directory and database. Each test either
guards a bug that was found this way or pins down a case that held up.
"""

import ctypes
import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from django.utils import timezone

from taskmanager import spoolfiles
from taskmanager.models import Command, LogLine, Report, RunHistory, Task

from .support.admin import add_task, press, task_form
from .support.adminclient import client_for, form_errors
from .support.objects import log_texts, make_report, make_task
from .support.procs import gone
from .support.scale import scaled
from .support.spool import spool_paths
from .support.waits import finished_report, running_report, wait_for, wait_gone

pytestmark = pytest.mark.django_db(transaction=True)

PR_SET_CHILD_SUBREAPER = 36


def log_since(server, offset: int) -> str:
    return server.log()[offset:]


# -- Crafted URLs and query strings ------------------------------------------------


@pytest.mark.parametrize("button", ["start", "stop", "run-now"])
def test_buttons_with_ids_that_are_not_numbers_answer_404(server, admin_http, button):
    # They used to raise ValueError in get_object_or_404: a 500 page.
    for object_id in ["abc", "1.5", "a%2Fb", "%00", "9" * 30, "-1"]:
        resp = admin_http.post("/admin/taskmanager/task/%s/%s/" % (object_id, button))
        assert resp.status == 404, (object_id, resp.status)


def test_status_endpoint_skips_ids_it_cannot_use(server, admin_http, commands):
    task = add_task(admin_http, commands, "status-ids", "tm_ok")
    # "²" passes str.isdigit() but not int(); a huge number overflows the driver.
    for junk in ["\u00b2", "9" * 30, "\uff11", "-1", "1e3", ""]:
        resp = admin_http.get("/admin/taskmanager/task/status/?ids=%s,%d" % (quote(junk), task.pk))
        assert resp.status == 200, (junk, resp.status)
        assert list(json.loads(resp.text)["tasks"]) == [str(task.pk)]


@pytest.mark.db_sensitive
def test_log_viewer_survives_crafted_query_strings(server, admin_http, commands):
    task = make_task(commands, "crafted-log")
    now = timezone.now()
    report = make_report(task, finished_datetime=now)
    # What the capture stores for a line with a NUL byte (logcapture.clean_text).
    LogLine.objects.create(report=report, seq=1, level=20, stream="stdout", timestamp=now, text="a\ufffdb")
    base = "/admin/taskmanager/report/%d/log/" % report.pk
    queries = [
        "after=-1",
        "after=abc",
        "after=1e5",
        "before=-5",
        "after=%s" % ("9" * 30),
        "before=%s" % ("9" * 30),
        "level=%3Cscript%3Ealert(1)%3C/script%3E",
        "q=%3Cscript%3Ealert(1)%3C/script%3E",
        "q=%25_%5C",
        "q=a%00b",  # PostgreSQL refuses NUL in a query: it used to be a 500 there
    ]
    for query in queries:
        for suffix in ["", "follow/", "download/"]:
            resp = admin_http.get(base + suffix + "?" + query)
            assert resp.status == 200, (suffix, query, resp.status)
            assert "<script>alert" not in resp.text
    # A NUL searched for finds the line it was stored in (as U+FFFD).
    found = json.loads(admin_http.get(base + "follow/?q=a%00b").text)
    assert [line["seq"] for line in found["lines"]] == [1]


def test_schedule_at_the_end_of_time_is_refused_and_breaks_no_page(server, admin_http, commands):
    # 9999-12-31 23:59:59 in Rome is 22:59:59 UTC: the next minute exists in
    # UTC but not in local time (year 10000). The form used to accept it and
    # the task page and the preview then failed with OverflowError.
    fields = {
        "scheduling_0": "9999-12-31",
        "scheduling_1": "23:59:59",
        "repetition_period": "minute",
        "repetition_rate": "1",
    }
    resp = admin_http.post("/admin/taskmanager/task/add/", task_form(commands, "end-of-time", **fields))
    assert not Task.objects.filter(name="end-of-time").exists()
    assert "9999" in form_errors(resp)
    preview = admin_http.get(
        "/admin/taskmanager/task/schedule-preview/?" + "&".join("%s=%s" % kv for kv in fields.items())
    )
    assert preview.status == 200
    assert len(json.loads(preview.text)["runs"]) <= 1
    # A task saved with such a schedule before the form refused it.
    anchor = timezone.make_aware(datetime(9999, 12, 31, 23, 59, 59))
    task = make_task(commands, "end-of-time-saved", scheduling=anchor, repetition_period="minute", repetition_rate=1)
    assert admin_http.get("/admin/taskmanager/task/%d/change/" % task.pk).status == 200
    assert admin_http.get("/admin/taskmanager/task/").status == 200


# -- Arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        "--settings=tests.settings",
        "--settings tests.settings",
        "--sett=evil",
        "--pythonpath /tmp",
        "--pythonpath=/tmp",
    ],
)
def test_settings_and_pythonpath_are_refused_at_save(server, admin_http, commands, arguments):
    # call_command() ignores both (only manage.py's run_from_argv applies them):
    # a task never runs with other settings or code, and a typed option that
    # would be silently ignored is refused with a reason instead.
    resp = admin_http.post("/admin/taskmanager/task/add/", task_form(commands, "options", "tm_ok", arguments))
    assert not Task.objects.filter(name="options").exists()
    errors = form_errors(resp)
    assert "not allowed as a task argument" in errors, errors
    assert "settings" in errors or "pythonpath" in errors


def test_other_global_options_are_accepted(server, admin_http, commands):
    task = add_task(admin_http, commands, "global-options", "tm_ok", "--traceback, --skip-checks, -v 2")
    press(admin_http, task, "start")
    assert finished_report(task).result == "OK"


@pytest.mark.parametrize("option", ["--no-color", "--force-color"])
def test_colour_options_keep_the_levels(server, admin_http, commands, option):
    # BaseCommand.execute() replaced the level-marking style for these options:
    # styled warnings and errors were stored as INFO and the run ended OK.
    task = add_task(admin_http, commands, "colours" + option, "tm_hostile", "--mode styled, " + option)
    press(admin_http, task, "start")
    report = finished_report(task)
    assert (report.result, report.warnings, report.errors) == ("ERRORS", 1, 1), log_texts(report)
    assert log_texts(report) == ["a styled warning", "a styled error", "plain"]


@pytest.mark.parametrize(
    "arguments",
    [
        "--word " + "A" * 100_000,
        "--word '🎉 漢字 ü', --word \"<img src=x onerror=alert(1)>\"",
    ],
    ids=["100KB", "unicode-html"],
)
def test_big_and_strange_arguments_run(server, admin_http, commands, arguments):
    task = add_task(admin_http, commands, "strange-args", "tm_ok", arguments + ", --lines 1")
    press(admin_http, task, "start")
    report = finished_report(task)
    assert report.result == "OK", log_texts(report)
    page = admin_http.get("/admin/taskmanager/task/%d/change/" % task.pk).text
    assert "<img src=x" not in page


# -- Permissions -------------------------------------------------------------------


def change_fields(task, **overrides) -> dict:
    """The task's change form as the admin would post it, with ``overrides``."""
    scheduling = timezone.localtime(task.scheduling) if task.scheduling else None
    fields = {
        "name": task.name,
        "command": task.command_id,
        "arguments": task.arguments,
        "note": task.note,
        "notify": "on",
        "scheduling_0": scheduling.strftime("%Y-%m-%d") if scheduling else "",
        "scheduling_1": scheduling.strftime("%H:%M:%S") if scheduling else "",
        "repetition_period": task.repetition_period,
        "repetition_rate": task.repetition_rate or "",
        "reports-TOTAL_FORMS": "0",
        "reports-INITIAL_FORMS": "0",
    }
    fields.update(overrides)
    return fields


@pytest.mark.parametrize("waiting", ["periodic", "run-now"])
def test_editing_what_a_waiting_run_executes_needs_the_run_permission(
    uwsgi_node, staff, commands, waiting
):
    # A staff user who may change tasks but not run them could swap the
    # command or arguments of a task someone else started: the next run then
    # executed their choice (credited to the person who pressed Start), and
    # the page told them "... was started".

    # Its own node: the cancelled hourly entry stays in the spool directory
    # until its time (a spool file is never unlinked by a web process).
    node = uwsgi_node(spooler_processes=1)
    admin = node.admin
    staff("change_task", "view_task", username="editor")
    client = client_for(node.url, "editor")
    if waiting == "periodic":
        task = add_task(
            admin, commands, "waiting", "tm_ok", "--lines 1", repetition_period="hour", repetition_rate="1"
        )
        press(admin, task, "start")
        finished_report(task)
    else:
        # The only spooler process is busy: the queued "run now" waits.
        blocker = add_task(admin, commands, "blocker", "tm_sleep", "--seconds 120, --tick 0.2")
        task = add_task(admin, commands, "waiting", "tm_ok", "--lines 1")
        press(admin, blocker, "run-now")
        running_report(blocker)
        press(admin, task, "run-now")
    task = Task.objects.get(pk=task.pk)
    before = (task.command_id, task.arguments, task.status, task.run_token, task.run_now_token)
    assert task.run_token or task.run_now_token
    page = client.get("/admin/taskmanager/task/%d/change/" % task.pk).text
    assert "You may not run this task&#x27;s command" in page
    assert re.search(r'<textarea name="arguments"[^>]*disabled', page), page[:3000]
    for change in [{"command": commands["tm_echo"].pk, "arguments": ""}, {"arguments": "--lines 2"}]:
        # What the form does not let them change is ignored when posted anyway.
        client.post("/admin/taskmanager/task/%d/change/" % task.pk, change_fields(task, **change))
        current = Task.objects.get(pk=task.pk)
        after = (
            current.command_id,
            current.arguments,
            current.status,
            current.run_token,
            current.run_now_token,
        )
        assert after == before
    # What does not change the run stays editable.
    resp = client.post("/admin/taskmanager/task/%d/change/" % task.pk, change_fields(task, note="checked"))
    assert Task.objects.get(pk=task.pk).note == "checked", form_errors(resp)
    # And someone who may run tasks can change the run.
    resp = admin.post(
        "/admin/taskmanager/task/%d/change/" % task.pk, change_fields(task, arguments="--lines 2")
    )
    assert Task.objects.get(pk=task.pk).arguments == "--lines 2", form_errors(resp)


def test_an_idle_tasks_definition_needs_the_run_permission_too(server, admin_http, staff, commands):
    # An idle task is one Start away from running what was typed into it by
    # someone else: its definition needs the run rights as well (issue 11).
    staff("change_task", "view_task", username="editor")
    client = client_for(server.url, "editor")
    task = add_task(admin_http, commands, "idle-edit", "tm_ok", "--lines 1")
    resp = client.post(
        "/admin/taskmanager/task/%d/change/" % task.pk,
        change_fields(task, arguments="--lines 3", note="renamed", name="idle-edited"),
    )
    task = Task.objects.get(pk=task.pk)
    assert (task.arguments, task.note, task.name) == ("--lines 1", "renamed", "idle-edited"), form_errors(resp)
    assert task.version == 1


def test_a_task_name_with_a_line_break_still_gets_its_failure_mail(uwsgi_node, commands, tmp_path):
    # The name went into the e-mail subject as it was: Django refuses a header
    # with a newline (BadHeaderError, a guard against header injection), so
    # the failure notice of such a task was never sent.
    import email

    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    node = uwsgi_node(
        settings={
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(mail_dir),
            "ADMINS": [["Ops", "ops@example.com"]],
        },
        spooler_processes=1,
    )
    client = node.admin
    task = add_task(client, commands, "nightly\r\nBcc: someone@example.com", "tm_raise", notify="on")
    assert "\n" in task.name
    press(client, task, "start")
    assert finished_report(task).result == "FAILED"
    # (The file-based backend creates the file before it writes the message.)
    files = wait_for(
        lambda: [p for p in mail_dir.glob("*.log") if p.stat().st_size],
        message="the failure mail",
    )
    message = email.message_from_bytes(files[0].read_bytes())
    assert message["Subject"].endswith("nightly Bcc: someone@example.com failed"), message["Subject"]
    assert message["Bcc"] is None


# -- Deleting things ---------------------------------------------------------------


def test_deleting_a_command_in_use_names_the_tasks(server, admin_http, commands):
    # A bare 403 (and, for the bulk action, "your account doesn't have
    # permission") used to be all the explanation.
    task = add_task(admin_http, commands, "keeps-its-command", "tm_noop")
    command = commands["tm_noop"]
    page = admin_http.get("/admin/taskmanager/command/%d/delete/" % command.pk)
    assert page.status == 200
    assert "protected" in page.text and task.name in page.text
    admin_http.post("/admin/taskmanager/command/%d/delete/" % command.pk, {"post": "yes"})
    bulk = admin_http.post(
        "/admin/taskmanager/command/",
        {"action": "delete_selected", "_selected_action": [command.pk], "index": "0", "post": "yes"},
    )
    assert "protected" in bulk.text and task.name in bulk.text
    assert "have permission" not in bulk.text
    assert Command.objects.filter(pk=command.pk).exists()
    # A command no task uses can still be deleted.
    unused = commands["tm_stamp"]
    admin_http.post("/admin/taskmanager/command/%d/delete/" % unused.pk, {"post": "yes"})
    assert not Command.objects.filter(pk=unused.pk).exists()


# -- Commands that misbehave -------------------------------------------------------


def spooler_cwds(server) -> set:
    cwds = set()
    for pid in server.spooler_pids():
        try:
            cwds.add(os.readlink("/proc/%d/cwd" % pid))
        except OSError:
            pass  # respawned meanwhile
    return cwds


@pytest.mark.parametrize(
    "mode, result, reason, last_line",
    [
        ("daemon", "OK", "completed", "1 process(es) started by the command outlived it and were killed."),
        ("keyboard-interrupt", "FAILED", "exception: KeyboardInterrupt", None),
        ("chdir-env", "OK", "completed", "cwd /"),
        ("no-newline", "OK", "completed", None),
    ],
)
def test_misbehaving_commands_end_cleanly(server, admin_http, commands, mode, result, reason, last_line):
    offset = len(server.log())
    size = 10 * 1024 * 1024
    task = add_task(
        admin_http, commands, "hostile-" + mode, "tm_hostile", "--mode %s, --size %d" % (mode, size)
    )
    press(admin_http, task, "start")
    report = finished_report(task, timeout=60)
    assert (report.result, report.end_reason) == (result, reason), log_texts(report)[-5:]
    if last_line is not None:
        assert log_texts(report)[-1] == last_line
    if mode == "no-newline":
        # 10 MB without a newline: stored in pieces of at most MAX_LINE_CHARS, nothing lost.
        assert sum(len(t) for t in log_texts(report)) == size
    # The child's chdir did not reach the spooler.
    assert "/" not in spooler_cwds(server)
    assert "Traceback" not in log_since(server, offset)
    task.refresh_from_db()
    assert task.status == "IDLE"


@pytest.mark.parametrize(
    "mode, output",
    [
        ("sys-executable", "0 python 3"),
        ("mp-spawn", "squares [1, 2, 3]"),
        ("mp-fork", "squares [1, 2, 3]"),
    ],
)
def test_commands_can_start_python(server, admin_http, commands, mode, output):
    # In a uWSGI process sys.executable is the uwsgi binary: a command running
    # [sys.executable, ...] or a multiprocessing pool with the "spawn" start
    # method (the "forkserver" default of Python 3.14 too) started uwsgi with
    # Python's arguments ("uwsgi: invalid option -- 'B'") and failed.
    task = add_task(admin_http, commands, "python-" + mode, "tm_hostile", "--mode " + mode)
    press(admin_http, task, "start")
    report = finished_report(task, timeout=60)
    # (multiprocessing's resource tracker may outlive the command: it is killed.)
    assert report.result == "OK" and output in log_texts(report), log_texts(report)


@pytest.mark.parametrize("mode", ["trap-term", "stop-self", "deadlock", "setpgid"])
def test_stop_ends_commands_that_resist(server, admin_http, commands, mode):
    task = add_task(admin_http, commands, "resists-" + mode, "tm_hostile", "--mode %s, --seconds 120" % mode)
    press(admin_http, task, "start")
    running = running_report(task)
    grandchild = None
    if mode == "setpgid":
        grandchild = int(re.match(r"grandchild (\d+)", log_texts(running)[0]).group(1))
    assert "is being stopped" in press(admin_http, task, "stop").text
    report = finished_report(task)
    assert report.end_reason == "stopped by user admin"
    wait_for(lambda: gone(running.pid), message="the command to be gone")
    if grandchild:
        wait_for(lambda: gone(grandchild), message="the grandchild in its own group to be gone")
    task.refresh_from_db()
    assert task.status == "IDLE"


# -- Buttons pressed from many threads ---------------------------------------------


@pytest.mark.db_sensitive
def test_button_storm_keeps_every_invariant(uwsgi_node, commands):
    # On MariaDB, Stop's update of the running report used to deadlock with
    # a run ending meanwhile (error 1213): a 500 page, in about half the runs.

    # Its own node: the cancelled entries of the minute grid stay in the
    # spool directory until their time.
    server = uwsgi_node()
    admin_http = server.admin
    offset = len(server.log())
    task = add_task(
        admin_http,
        commands,
        "storm",
        "tm_sleep",
        "--seconds 0.3, --tick 0.1",
        repetition_period="minute",
        repetition_rate="1",
    )
    answers, failures = Counter(), []
    calm = threading.Event()

    def presser(seed):
        client = client_for(server.url, "admin")
        rnd = random.Random(seed)
        while not calm.is_set():
            button = rnd.choice(["start", "stop", "run-now"])
            resp = press(client, task, button, status=None)
            answers[button, resp.status] += 1
            if resp.status != 200:
                failures.append((button, resp.status, resp.text[:500]))

    threads = [threading.Thread(target=presser, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    # Six seconds of presses at least, and until runs happened among them (a
    # loaded machine's spoolers, at nice 19, may claim none in six seconds).
    storm_end = time.monotonic() + 6
    try:
        wait_for(
            lambda: time.monotonic() >= storm_end and Report.objects.filter(task=task).count() >= 2,
            interval=0.2,
            message="runs during the storm",
        )
    finally:
        calm.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:1]

    def quiet():
        press(admin_http, task, "stop")
        current = Task.objects.get(pk=task.pk)
        return (
            current.status == "IDLE"
            and not current.run_now_token
            and not Report.objects.filter(task=task, finished_datetime__isnull=True).exists()
        )

    wait_for(quiet, interval=0.5, message="the task to settle")
    # Never two runs at once: the run history's intervals do not overlap.
    runs = list(RunHistory.objects.filter(task=task).order_by("started"))
    assert runs, answers
    for before, after in zip(runs, runs[1:], strict=False):
        assert before.started + before.duration <= after.started, (before.started, after.started)
    # No run left a process behind, and nothing in the server raised.
    for pid in Report.objects.filter(task=task).values_list("pid", flat=True):
        assert pid is None or gone(pid)
    log = log_since(server, offset)
    assert "Traceback" not in log
    assert "HTTP/1.1 500" not in log


# -- The whole server killed mid-run -----------------------------------------------


@pytest.fixture
def orphans_stay_zombies():
    """Make this process adopt orphaned descendants and leave them unreaped during the test.

    As under a container init that does not reap (or is slow to): a spooler
    killed together with its master stays a zombie, and its pid with the
    same start time is still listed in /proc. Reaped (and undone) at the end.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    assert prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    adopted = []
    yield adopted
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    for pid in adopted:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


@pytest.mark.db_sensitive
def test_sigkill_of_the_whole_server_then_restart_on_the_same_spool(
    uwsgi_node, commands, orphans_stay_zombies
):
    first = uwsgi_node()
    client = first.admin
    one_shot = add_task(client, commands, "killed-one-shot", "tm_sleep", "--seconds 60, --tick 0.2")
    periodic = add_task(
        client,
        commands,
        "killed-periodic",
        "tm_sleep",
        "--seconds 60, --tick 0.2",
        repetition_period="hour",
        repetition_rate="1",
    )
    for task in (one_shot, periodic):
        press(client, task, "start")
    runs = [running_report(task) for task in (one_shot, periodic)]
    orphans_stay_zombies.extend(first.spooler_pids())
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=scaled(60))
    # The commands die with their supervisors (PDEATHSIG).
    for run in runs:
        wait_for(lambda run=run: gone(run.pid), message="the command of a killed spooler to die")
    assert all(Task.objects.get(pk=task.pk).status == "STARTED" for task in (one_shot, periodic)), (
        "the kill came too late"
    )

    # Only the recovery at spooler start (no timer): it must see that a
    # zombie supervisor is gone (it was taken for alive: the runs stayed
    # STARTED until a later timer tick, or for ever without the timer).
    second = uwsgi_node(login=False, spool_dir=first.spool_dir, settings={"TASKMANAGER_RECOVERY_SECONDS": 0})
    for run in runs:
        wait_for(
            lambda run=run: Report.objects.get(pk=run.pk).finished_datetime,
            message="recovery to close the interrupted run",
        )
        closed = Report.objects.get(pk=run.pk)
        assert (closed.result, closed.end_reason) == ("FAILED", "interrupted")
    # The spool files of the two runs are consumed as stale, once each; only
    # the periodic task's next run (in an hour) stays.
    wait_for(
        lambda: len(spool_paths(second.spool_dir)) == 1,
        message="the old spool files to be consumed",
    )
    # Two more whole directory scans (a re-run loop would show now): each
    # scan consumes a file this process writes, of a task that does not
    # exist; the second is written once the first is gone.
    markers = set()
    for n in range(2):
        marker = spoolfiles.write(second.spool_dir, spoolfiles.make_entry(10**9 + n, "scan%d" % n, "start"))
        markers.add(os.path.basename(marker))  # the uWSGI log names files without their directory
        wait_gone(marker)
    managed = Counter(re.findall(r"managing request (\S+)", second.log()))
    assert markers <= set(managed), managed
    managed = Counter({path: count for path, count in managed.items() if path not in markers})
    assert len(managed) == 2 and max(managed.values()) == 1, managed
    assert Report.objects.filter(task=one_shot).count() == 1
    assert Report.objects.filter(task=periodic).count() == 1
    assert Task.objects.get(pk=one_shot.pk).status == "IDLE"
    assert Task.objects.get(pk=periodic.pk).status == "SPOOLED"
    assert [p.name for p in spool_paths(second.spool_dir)] == [Path(Task.objects.get(pk=periodic.pk).spooler_id).name]


"""Faults a person must be told about in words they can act on (issue 13), through the real uWSGI server."""

import pytest

from taskmanager.models import Task

from .support.admin import TASK_URL, press, run_to_end, task_form
from .support.adminclient import form_errors
from .support.waits import finished_report, finished_reports, running_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_use_tz_false_is_named_by_the_form_and_by_start(uwsgi_node, commands):
    # uWSGI serves without running system checks: with USE_TZ = False the
    # form refused every schedule with "The current time must include a
    # time zone.", which names no setting.
    node = uwsgi_node(settings={"USE_TZ": False}, spooler_processes=1)
    resp = node.admin.post(TASK_URL + "add/", task_form(commands, "naive", "tm_ok"))
    errors = form_errors(resp)
    assert "USE_TZ" in errors and "taskmanager.E003" in errors, errors
    assert not Task.objects.filter(name="naive").exists()
    # A task saved before the setting changed: Start says the same, and nothing runs.
    task = Task.objects.create(name="older", command=commands["tm_ok"])
    page = press(node.admin, task, "start").text
    assert "USE_TZ" in page and "taskmanager.E003" in page, page[:3000]
    task.refresh_from_db()
    assert (task.status, task.run_token) == ("IDLE", "")


# -- values a command can produce that no column holds (issue 13, item 3) -------------


@pytest.mark.db_sensitive
def test_out_of_range_levels_and_progress_lose_nothing(server, admin_http, commands):
    # Before: on PostgreSQL a level of 40000 wrapped to -25536 and failed the
    # CHECK of every batch (0 lines stored, the task STARTED for minutes);
    # 10**19 as progress failed "bigint out of range", and on SQLite its
    # OverflowError aborted the supervision and killed the command.
    from taskmanager.progress import MAX_VALUE

    task, report = run_to_end(admin_http, commands, "huge-values", "tm_values")
    rows = list(report.log_lines.order_by("seq").values_list("level", "stream", "text"))
    texts = [text for _level, _stream, text in rows]
    assert (report.result, report.end_reason) == ("ERRORS", "completed"), rows
    assert (report.lines, report.errors) == (3, 2), rows
    stored = {text: level for level, _stream, text in rows}
    assert stored["level forty thousand"] == stored["level seventy thousand"] == 32767
    assert "after the huge values" in texts
    notes = [text for _level, stream, text in rows if stream == "taskmanager"]
    assert any("level 40000 is outside 0-32767" in note for note in notes), notes
    assert any("level 70000 is outside" in note for note in notes), notes
    assert any("progress number" in note for note in notes), notes
    assert (report.progress_done, report.progress_total) == (MAX_VALUE, MAX_VALUE)
    task.refresh_from_db()
    assert task.status == "IDLE"


@pytest.mark.db_sensitive
def test_a_batch_refused_for_one_row_is_written_row_by_row(transactional_db, commands):
    # The general rule, for the value nobody foresaw: only the bad row is
    # replaced by a note. A level too large for any integer column stands in
    # for it here (store_line takes what add_line would have clamped).
    from taskmanager.models import Report, Task
    from taskmanager.runner.reportlog import ReportLog

    task = Task.objects.create(name="repair", command=commands["tm_ok"])
    report = Report.objects.create(task=task, trigger="start")
    log = ReportLog(task, report)
    log.add_line(20, "stdout", "before")
    log.store_line(10**19, "stdout", "unstorable", None)
    log.add_line(20, "stdout", "after")
    log.safe_flush(force=True)
    if log.batch:  # the failed attempt happened inside the retry window: flush again
        log.safe_flush(force=True)
    rows = list(report.log_lines.order_by("seq").values_list("seq", "stream", "text"))
    assert [text for _seq, _stream, text in rows][0] == "before", rows
    assert rows[2][2] == "after", rows
    assert rows[1][1] == "taskmanager" and rows[1][2].startswith("A line could not be stored"), rows
    assert not log.batch and not log.repair


# -- a locked database (issue 13, item 7) --------------------------------------------


def test_a_busy_database_answers_503_and_does_nothing(uwsgi_node, commands):
    # Before: Start and Stop answered a bare 500 after the busy timeout, and
    # the Stop was lost. Another process holds SQLite's write lock here; the
    # node's busy timeout is 1 s.
    import sqlite3

    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the write lock of one process over the whole database is SQLite's")
    node = uwsgi_node(settings={"SQLITE_TIMEOUT": 1}, spooler_processes=1)
    task = Task.objects.create(name="busy", command=commands["tm_ok"], arguments="--lines 1")
    locker = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        for button in ("start", "run-now", "stop"):
            resp = press(node.admin, task, button, status=None)
            assert resp.status == 503, (button, resp.status, resp.text[:2000])
            assert "The database is busy" in resp.text and "nothing was done" in resp.text, resp.text[:2000]
        resp = node.admin.post(TASK_URL + "%d/change/" % task.pk, {"name": "renamed"})
        assert resp.status == 503, resp.text[:2000]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    task.refresh_from_db()
    assert (task.name, task.status, task.run_token, task.run_now_token) == ("busy", "IDLE", "", "")
    # Once the lock is gone, the same button works.
    assert "was started" in press(node.admin, task, "start").text
    assert finished_report(task).result == "OK"


# -- Start, then Run now, with every spooler busy (issue 13, item 1) ------------------


@pytest.mark.db_sensitive
def test_start_then_run_now_on_busy_spoolers_both_run(uwsgi_node, commands):
    # Before: whichever entry came second found the task running and was
    # consumed: a "run now" left its token set for ever ("already queued" to
    # every later Run now), or the Start's run was counted as a skipped slot;
    # one run instead of two. Both spooler processes are busy when both
    # entries are written, then freed at once, so the two are claimed
    # together (in either order).
    from taskmanager.models import Report

    node = uwsgi_node(spooler_processes=2)
    blockers = [
        Task.objects.create(
            name="blocker-%d" % i, command=commands["tm_sleep"], arguments="--seconds 120, --tick 0.2"
        )
        for i in range(2)
    ]
    for blocker in blockers:
        press(node.admin, blocker, "start")
    for blocker in blockers:
        running_report(blocker)
    task = Task.objects.create(
        name="twice", command=commands["tm_sleep"], arguments="--seconds 3, --tick 0.2"
    )
    assert "was started" in press(node.admin, task, "start").text
    assert "will run now" in press(node.admin, task, "run-now").text
    for blocker in blockers:
        press(node.admin, blocker, "stop")
    reports = finished_reports(task, count=2, timeout=60)
    # The Start's run, deferred behind the "run now" one, is spooled again by
    # the end of that run, or by the periodic recovery if it sees the entry
    # missing first (trigger "recovery"): either way it runs, once.
    triggers = sorted(r.trigger for r in reports)
    assert triggers in (["run now", "start"], ["recovery", "run now"]), [
        (r.trigger, r.end_reason) for r in reports
    ]
    assert all(r.result == "OK" for r in reports), [(r.trigger, r.result, r.end_reason) for r in reports]
    wait_for(
        lambda: Task.objects.filter(pk=task.pk, status="IDLE", run_token="", run_now_token="").exists(),
        message="the task to be idle with no token left",
    )
    assert Report.objects.filter(task=task).count() == 2
    # Run now answers again (no stuck token).
    assert "will run now" in press(node.admin, task, "run-now").text
    assert len(finished_reports(task, count=3, timeout=60)) == 3

"""The fast run path (issue 8) keeps what a run guarantees.

The command's child is forked before the claim and runs the command only once
the claim is committed; the report is committed with the child's pid; the
supervisor keeps its database connection across runs and across the fork,
and the command opens its own.
"""

import os

import pytest
from django.db import connection

from taskmanager import processes, retention, runner
from taskmanager.models import Report, RunHistory, Task, TaskCategory, new_token

from .support import sqlcount
from .support.admin import add_task, press
from .support.objects import make_task
from .support.waits import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def spooled(commands, name, command, arguments=""):
    """Create a task waiting in a (pretend) spool entry; return (task, token)."""
    token = new_token()
    task = make_task(
        commands,
        name,
        command,
        arguments=arguments,
        status=Task.Status.SPOOLED,
        run_token=token,
    )
    return task, token


@pytest.mark.db_sensitive
def test_the_claim_commits_the_report_with_its_waiting_child(commands, tmp_path):
    proof = tmp_path / "ran"
    task, token = spooled(commands, "claimed", "tm_dbwrite", "--rows 2, --touch %s" % proof)
    task, report = runner.claim(task.pk, token, "start", prefork=True)
    # Committed with the claim: from the report's first moment, recovery can
    # tell the run's process group and its command line is shown.
    row = Report.objects.get(pk=report.pk)
    assert row.pid == report.child.pid
    assert row.pid_started is not None and row.pid_started == processes.start_time(row.pid)
    assert "tm_dbwrite" in row.command_line and str(proof) in row.command_line
    assert Task.objects.get(pk=task.pk).status == Task.Status.STARTED
    runner.Supervisor(task, report).run()
    row.refresh_from_db()
    assert row.result == "OK", list(row.log_lines.values_list("text", flat=True))
    assert proof.read_text() == str(row.pid)
    assert list(row.log_lines.values_list("text", flat=True)) == ["wrote 2, read 2"]


@pytest.mark.db_sensitive
def test_a_lost_claim_kills_the_waiting_child_before_the_command_runs(commands, tmp_path, monkeypatch):
    proof = tmp_path / "ran"
    task, token = spooled(commands, "lost", "tm_dbwrite", "--rows 1, --touch %s" % proof)
    forked = []
    spawn = runner.Child.spawn

    def spawn_and_note(*args, **kwargs):
        child = spawn(*args, **kwargs)
        forked.append(child.pid)
        return child

    monkeypatch.setattr(runner.Child, "spawn", spawn_and_note)
    table = connection.ops.quote_name(Task._meta.db_table)

    def another_process_claims_first(execute, sql, params, many, context):
        # Between this process's fork and its claim, another one takes the
        # run (its token is no longer the entry's).
        if sql.startswith("UPDATE %s" % table) and "STARTED" in str(params):
            execute(
                "UPDATE %s SET status = %%s, run_token = %%s WHERE id = %%s" % table,
                [Task.Status.STARTED, new_token(), task.pk],
                False,
                context,
            )
        return execute(sql, params, many, context)

    with connection.execute_wrapper(another_process_claims_first):
        assert runner.claim(task.pk, token, "start", prefork=True) is None
    assert len(forked) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forked[0], os.WNOHANG)  # killed and reaped by the claim
    assert not Report.objects.filter(task=task).exists()
    assert not proof.exists()


@pytest.mark.db_sensitive
def test_commands_write_to_the_database_beside_their_supervisor(server, admin_http, commands):
    # The supervisor keeps its connection open while the child opens its own
    # (on SQLite: in a process that inherited the supervisor's).
    tasks = [
        add_task(admin_http, commands, "dbwrite-%d" % i, "tm_dbwrite", "--rows 30, --prefix dbw%d" % i)
        for i in range(2)
    ]
    rounds = 3
    for done in range(1, rounds + 1):
        for task in tasks:
            press(admin_http, task, "start")
        for task in tasks:
            wait_for(
                lambda task=task, done=done: (
                    Report.objects.filter(task=task, finished_datetime__isnull=False).count() == done
                    and Task.objects.get(pk=task.pk).status == Task.Status.IDLE
                ),
                timeout=60,
                message="run %d of %s" % (done, task.name),
            )
    for report in Report.objects.filter(task__in=tasks):
        texts = list(report.log_lines.values_list("text", flat=True))
        assert report.result == "OK" and texts == ["wrote 30, read 30"], (report.end_reason, texts)
    for i in range(2):
        assert TaskCategory.objects.filter(name__startswith="dbw%d-" % i).count() == rounds * 30
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA integrity_check")
            assert cursor.fetchall() == [("ok",)]


@pytest.mark.db_sensitive
def test_a_slot_due_during_the_run_is_skipped_and_noted(commands, settings):
    from datetime import timedelta

    from django.utils import timezone

    # Spool entries stay in this process: a later entry is simply dropped.
    settings.TASKMANAGER_BACKEND = "taskmanager.spooler.immediate.ImmediateBackend"
    token = new_token()
    now = timezone.now()
    task = make_task(
        commands,
        "daily",
        arguments="--lines 1",
        scheduling=now - timedelta(days=3),
        repetition_period=Task.Period.DAY,
        repetition_rate=1,
        status=Task.Status.SPOOLED,
        run_token=token,
        next_datetime=now - timedelta(seconds=1),
    )
    task, report = runner.claim(task.pk, token, "schedule", prefork=True)
    next_token = Task.objects.get(pk=task.pk).run_token
    assert next_token and next_token != token
    # The next slot's entry runs while this run is still going.
    assert runner.claim(task.pk, next_token, "schedule", prefork=True) is None
    assert Report.objects.filter(task=task).count() == 1
    assert Report.objects.get(pk=report.pk).skipped_runs == 1
    runner.Supervisor(task, report).run()
    report.refresh_from_db()
    texts = list(report.log_lines.values_list("text", flat=True))
    assert report.result == "OK", texts
    assert texts[-1] == "1 scheduled run(s) came due while this run was going and were skipped."
    task.refresh_from_db()
    assert task.status == Task.Status.SPOOLED and task.run_token not in ("", next_token)


#: Issue 17's budget of the run path, with the shipped settings: SQL statements
#: and durable commits of every one-shot run, the one that prunes included
#: (there is none: the periodic pass prunes); a periodic run adds one of each
#: (its next entry's path is stored). Counted apart: the BEGIN of each
#: transaction (SQLite's BEGIN IMMEDIATE goes through Django's cursor,
#: PostgreSQL's and MariaDB's drivers send theirs unseen), at most one per
#: durable commit.
RUN_PATH_STATEMENTS, RUN_PATH_COMMITS = 6, 2
#: MySQL/MariaDB have no UPDATE ... RETURNING: the end reads the report's
#: skipped runs and the task's deferred runs apart (taskmanager/prepared.py).
NO_RETURNING_READS = 2


@pytest.mark.db_sensitive
def test_the_run_path_issues_a_handful_of_statements_and_two_commits(uwsgi_node, commands, tmp_path):
    # Counted in the spooler (tests/support/sqlcount.py): the statements
    # issued inside runner.execute, from the claim to the end's last query.
    # One spooler process: the runs of one task all end in it, as many as a
    # process once needed to prune (retention.PRUNE_EVERY) and one more.
    node = uwsgi_node(spooler_processes=1, **sqlcount.counting_node(tmp_path))
    one_shot = make_task(commands, "sql-one-shot", "tm_noop")
    periodic = make_task(
        commands, "sql-periodic", "tm_noop", repetition_period=Task.Period.DAY, repetition_rate=1
    )
    reads = NO_RETURNING_READS if connection.vendor == "mysql" else 0
    runs = [(one_shot, 0), (periodic, 1)] + [(one_shot, 0)] * retention.PRUNE_EVERY
    for task, extra in runs:
        runs, traced = sqlcount.runs_logged(tmp_path), len(sqlcount.read_run_trace(tmp_path))
        press(node.admin, task, "start")
        wait_for(lambda runs=runs: sqlcount.runs_logged(tmp_path) > runs, timeout=60, message="the run")
        trace = [line.split(" ", 1)[1] for line in sqlcount.read_run_trace(tmp_path)[traced:]]
        # Not the run's: the setup of a spooler's first connection (MariaDB's isolation level).
        trace = [sql for sql in trace if not sql.startswith("SET ")]
        begins = sum(sql.startswith("BEGIN") for sql in trace)
        commits = trace.count("(commit)")
        statements = len(trace) - commits - begins
        shown = "\n".join(trace)
        assert statements <= RUN_PATH_STATEMENTS + extra + reads, shown
        assert commits <= RUN_PATH_COMMITS + extra and begins <= commits, shown
    # (Old reports may be gone: the periodic pass prunes.)
    assert not Report.objects.filter(task=one_shot).exclude(result="OK").exists()
    assert Task.objects.get(pk=one_shot.pk).status == Task.Status.IDLE
    assert Task.objects.get(pk=periodic.pk).status == Task.Status.SPOOLED


@pytest.mark.db_sensitive
def test_a_run_whose_history_row_fails_still_ends_as_it_ran(commands, caplog):
    # The history row goes in without a savepoint of its own (issue 17); when
    # it fails, the end's transaction is written again with the history apart
    # (which fails again here, and is logged): the run's outcome is unchanged.
    task, token = spooled(commands, "no-history", "tm_ok")
    table = connection.ops.quote_name(RunHistory._meta.db_table)

    def history_table_missing(execute, sql, params, many, context):
        if sql.startswith("INSERT INTO %s" % table):
            # A real error of the database (on PostgreSQL it aborts the transaction).
            sql = sql.replace(table, connection.ops.quote_name("taskmanager_missing"), 1)
        return execute(sql, params, many, context)

    task, report = runner.claim(task.pk, token, "start", prefork=True)
    with connection.execute_wrapper(history_table_missing):
        runner.Supervisor(task, report).run()
    report.refresh_from_db()
    assert (report.result, report.end_kind) == ("OK", "completed"), report.end_reason
    task.refresh_from_db()
    assert (task.status, task.last_result, task.last_end_kind) == (Task.Status.IDLE, "OK", "completed")
    assert not RunHistory.objects.filter(task=task).exists()
    assert "Could not record the run history of task %d" % task.pk in caplog.text

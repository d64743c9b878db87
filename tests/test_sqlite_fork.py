"""A forked process never runs on SQLite state it inherited (issue 17's fork server and reused child).

SQLite keeps, per process, what it knows of a database file: its locks and
the mapping of its WAL index (the ``-shm`` file). ``fork()`` copies that
knowledge but not the locks (POSIX locks are not inherited). A fork server
forked from a spooler holding a connection, or a reused child waiting
between runs, would carry that copy for as long as it lives; once every
process has closed the database, the last one deletes the ``-shm`` file and
the next one creates a new one, and a child that reuses the inherited
mapping reads (and writes) a WAL index nobody else sees: "database disk
image is malformed", or commits the other processes never see.

So every process must let go of the file when idle (the first test: worker
1's start-up checks used to keep a connection nobody closed), and a process
forked from a spooler must open the file afresh (the second). The second
test makes the hazard happen for real: a node on a database file of its own,
a run, then every process lets go of the file (the recovery pass closes the
spooler's connection, web workers close theirs per request, this test only
opens it briefly) until ``-shm`` is gone; the second run must write and
read its rows like the first.
"""

import os

import pytest
from django.db import connection

from taskmanager.models import Task

from .support.admin import press
from .support.adminclient import client_for
from .support.objects import make_superuser, make_task
from .support.sqlitefile import copy_test_database, holders, query
from .support.waits import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="SQLite's per-process state; other databases are servers"
    ),
]


def runs_done(path, task) -> list[tuple]:
    return query(
        path,
        "SELECT result, end_reason, id FROM taskmanager_report WHERE task_id = ? AND finished_datetime IS NOT NULL",
        task.pk,
    )


def let_go(path) -> None:
    """Wait until no process holds the database file (the last one to close deleted ``-shm``)."""
    try:
        wait_for(lambda: not os.path.exists(path + "-shm"), timeout=60, message="-shm deleted")
    except AssertionError as exc:
        raise AssertionError("%s; processes holding it open: %s" % (exc, holders(path))) from None


def test_a_started_node_lets_go_of_the_database_when_idle(uwsgi_node, commands, tmp_path):
    # Worker 1's start-up checks query the database (clock, node identity)
    # outside any request; the idle spooler closes its connection after each
    # recovery pass. Nothing else may keep the file open.
    path = copy_test_database(str(tmp_path / "own.sqlite3"))
    uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1}, env={"TM_TEST_SERVER_DB": path}, login=False)
    let_go(path)


@pytest.mark.parametrize("runs_per_child", [1, 2], ids=["fresh-child", "reused-child"])
def test_a_run_after_every_process_let_go_of_the_database_reads_and_writes_it(
    uwsgi_node, commands, tmp_path, runs_per_child
):
    # Two tasks of one command (a reused child serves both): the rows' names differ by task.
    tasks = [
        make_task(commands, "dbwrite-%d" % i, "tm_dbwrite", arguments="--rows 20 --prefix shm%d" % i)
        for i in (1, 2)
    ]
    make_superuser()
    # A database file of this node's own (the suite's other servers keep the test database open).
    path = copy_test_database(str(tmp_path / "own.sqlite3"))
    node = uwsgi_node(
        settings={"TASKMANAGER_RECOVERY_SECONDS": 1, "TASKMANAGER_RUNS_PER_CHILD": runs_per_child},
        env={"TM_TEST_SERVER_DB": path},
        spooler_processes=1,
        login=False,
    )
    admin = client_for(node.url, "admin")
    for task in tasks:
        if task is tasks[1]:
            let_go(path)  # every process lets go: the last to close deletes the WAL index
        press(admin, task, "start")
        wait_for(lambda task=task: runs_done(path, task), timeout=60, message="the run of %s" % task.name)
        assert query(path, "SELECT status FROM taskmanager_task WHERE id = ?", task.pk) == [(Task.Status.IDLE,)]
        ((result, end_reason, report_id),) = runs_done(path, task)
        texts = [t for (t,) in query(path, "SELECT text FROM taskmanager_logline WHERE report_id = ?", report_id)]
        assert (result, texts) == ("OK", ["wrote 20, read 20"]), (task.name, end_reason, texts)
    assert query(path, "SELECT count(*) FROM taskmanager_taskcategory WHERE name LIKE 'shm_-%'") == [(40,)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]

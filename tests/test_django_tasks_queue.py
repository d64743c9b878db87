"""The django.tasks queue (issue 18), through a real uWSGI server: where calls are enqueued from
(a web worker, a management command, a process with no spooler), when they run (at a spooler's
start, not before ``run_after``, highest priority first), which node runs them (its queues), who
reads them (a web worker's ``get_result``), and 1,000 quick calls each run once.

Where django.tasks or its backport is installed, as tests/test_django_tasks.py.
"""


import pytest

from taskmanager.djangotasks import api

if api.SOURCE is None:
    pytest.skip(api.MISSING, allow_module_level=True)

from taskmanager.models import DjangoTaskResult, SpoolerHeartbeat  # noqa: E402 - after the skip

from .support.djtasks import (  # noqa: E402
    NODE_QUEUE,
    enqueue,
    enqueue_many,
    finished_row,
    result_in_web_worker,
    tm_enqueue,
)
from .support.spool import node_name  # noqa: E402
from .support.waits import recovery_ticks, wait_for  # noqa: E402

pytestmark = pytest.mark.db_sensitive

#: A recovery interval no test waits for: what runs, runs without a periodic pass.
NEVER = 3600
#: Only the test's own node serves NODE_QUEUE.
OWN = {"TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE]}


def test_rows_stored_where_no_spooler_is_run_at_a_spoolers_start_highest_priority_first(uwsgi_node):
    """Enqueued here (no uWSGI: no spool hint), the due rows run as soon as a spooler node starts,
    not a recovery interval later; its one spooler process claims them highest priority first,
    the oldest first among equals."""
    from tests.testapp import djtasks

    add = djtasks.add.using(queue_name=NODE_QUEUE)
    ids = [add.using(priority=p).enqueue(n, 0).id for n, p in enumerate([0, 10, -5, 10, 3])]
    node = uwsgi_node(
        settings={"TASKMANAGER_RECOVERY_SECONDS": NEVER, **OWN}, spooler_processes=1, http=False, login=False
    )
    rows = [finished_row(pk) for pk in ids]
    assert [row.status for row in rows] == ["SUCCESSFUL"] * 5, [row.errors for row in rows]
    assert {row.report.supervisor_pid for row in rows} <= set(node.spooler_pids())
    claimed = sorted(rows, key=lambda row: row.report_id)  # reports are made at the claims
    assert [row.return_value for row in claimed] == [1, 3, 4, 0, 2]


def test_a_deferred_call_does_not_run_before_its_run_after(server):
    """``run_after`` 3 s ahead (``supports_defer``): the spool hint waits for it, the claim too."""
    deferred = enqueue(server, "add", 1, 1, delay=3)
    now = enqueue(server, "add", 2, 2)
    assert finished_row(now).status == "SUCCESSFUL"
    row = finished_row(deferred)
    assert row.status == "SUCCESSFUL", row.errors
    assert row.run_after is not None and row.started_at >= row.run_after


def test_a_node_runs_the_queues_it_serves_and_leaves_the_others(uwsgi_node):
    """Django's queue names are the app's: a node serving ``default`` runs that queue's calls and
    leaves a call of another queue READY through its periodic passes; a node serving that one runs it."""
    default_node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1}, login=False)
    other = enqueue(default_node, "add", 1, 1, queue=NODE_QUEUE)
    default = enqueue(default_node, "add", 2, 2)
    assert finished_row(default).status == "SUCCESSFUL"
    recovery_ticks(default_node, 3)
    assert DjangoTaskResult.objects.get(pk=other).status == "READY"
    other_node = uwsgi_node(
        settings={"TASKMANAGER_RECOVERY_SECONDS": NEVER, "TASKMANAGER_SERVE_QUEUES": [NODE_QUEUE]},
        http=False,
        login=False,
    )
    row = finished_row(other)
    assert (row.status, row.return_value, row.queue_name) == ("SUCCESSFUL", 2, NODE_QUEUE)
    assert row.report.supervisor_pid in other_node.spooler_pids()


def test_a_call_enqueued_with_no_uwsgi_on_a_spoolers_machine_runs_at_once(uwsgi_node):
    """Here (pytest: no uWSGI, the spooler's machine and user) the hint goes straight into the
    spool directory of the live local node (``djangotasks/hints.py``): the call runs at the node's
    next scan, not a recovery interval (an hour here) later."""
    from tests.testapp import djtasks

    node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": NEVER, **OWN}, spooler_processes=1, login=False)
    # Its one spooler has started (and hinted what was waiting): a call through its web worker ran.
    assert finished_row(enqueue(node, "add", 1, 1, queue=NODE_QUEUE)).status == "SUCCESSFUL"
    assert SpoolerHeartbeat.objects.filter(node=node_name(node.spool_dir)).exists()
    row = finished_row(djtasks.add.using(queue_name=NODE_QUEUE).enqueue(2, 3).id)
    assert row.status == "SUCCESSFUL" and row.return_value == 5
    assert row.report.supervisor_pid in node.spooler_pids()


def test_a_call_enqueued_by_a_management_command_runs_and_a_web_worker_reads_its_result(uwsgi_node):
    """``manage.py tm_enqueue`` (its own process, no uWSGI) stores the call; a spooler node runs it
    (a local node from the hint written into its directory, else at a periodic pass); a uWSGI web
    worker reads its result with ``get_result``."""
    node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1}, login=False)
    result_id = tm_enqueue("add", 4, 5)
    assert finished_row(result_id).status == "SUCCESSFUL"
    assert result_in_web_worker(node, result_id) == {
        "status": "SUCCESSFUL",
        "return_value": 9,
        "task": "tests.testapp.djtasks.add",
    }


def test_a_thousand_quick_calls_each_run_once(uwsgi_node, tmp_path):
    """1,000 calls enqueued in one transaction (1,000 spool hints), two spooler processes with
    reused children: every row ends SUCCESSFUL, claimed once (one worker id), its function run once
    (each run appends its result's id to one file: each id is there once). Not counted by reports:
    the session's uWSGI prunes any task's reports to its own ``REPORTS_KEPT``."""
    node = uwsgi_node(settings={"TASKMANAGER_RUNS_PER_CHILD": 1000, **OWN}, login=False)
    runs = tmp_path / "runs"
    ids = enqueue_many(node, "mark", str(runs), n=1000, queue=NODE_QUEUE)
    assert len(set(ids)) == 1000
    wait_for(
        lambda: DjangoTaskResult.objects.filter(status__in=["SUCCESSFUL", "FAILED"]).count() == 1000,
        timeout=600,
        interval=0.5,
        message="1,000 calls to finish",
    )
    rows = list(DjangoTaskResult.objects.values_list("status", "worker_ids"))
    assert len(rows) == 1000
    assert {status for status, _workers in rows} == {"SUCCESSFUL"}
    assert all(len(workers) == 1 for _status, workers in rows)
    assert sorted(runs.read_text().split()) == sorted(ids)


def test_a_call_enqueued_while_every_spooler_is_busy_runs_once_one_is_free(uwsgi_node):
    """``uwsgi.spool()`` wakes idle spooler processes only: the enqueue wakes the busy one too, as Start does.

    The call runs when the current one ends, not at the next directory scan
    (every ``spooler-frequency`` seconds, 600 here; no periodic pass either).
    """
    node = uwsgi_node(
        settings={"TASKMANAGER_RECOVERY_SECONDS": 0, **OWN},
        spooler_processes=1,
        drop_args=("--spooler-frequency",),
        extra_args=["--spooler-frequency", "600"],
        login=False,
    )
    busy = enqueue(node, "sleep", 3, queue=NODE_QUEUE)
    wait_for(
        lambda: DjangoTaskResult.objects.filter(pk=busy, status="RUNNING").exists(),
        message="the long function to run",
    )
    waiting = enqueue(node, "add", 1, 2, queue=NODE_QUEUE)
    # Hinted while the only spooler was busy (else this test proves nothing).
    assert DjangoTaskResult.objects.get(pk=busy).status == "RUNNING"
    row = finished_row(waiting, timeout=120)
    assert (row.status, row.return_value) == ("SUCCESSFUL", 3)
    assert row.started_at >= finished_row(busy).finished_at

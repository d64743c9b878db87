"""Run one task: claim it, supervise its command in a forked child, store the log.

``execute()`` is what a spooler calls for a spool entry. The steps:

1. **Claim**: one conditional UPDATE of the task, checked by its row count,
   turns it STARTED only if the entry's token is still the task's current
   one; the Report row is created in the same transaction. A stale token
   (the task was stopped, edited or deleted) consumes the entry silently.
   A periodic task's next run is spooled right after the claim, so a
   supervisor that dies mid-run does not break the chain.
2. **Supervise**: the command runs through ``call_command`` in a forked
   child with its own process group, killed by Linux if the supervisor dies
   (PDEATHSIG; in a spooler the child is forked by the spooler's fork
   server, :mod:`.forkserver`, and the death is chained through it); the
   supervisor reads its output (see
   :mod:`taskmanager.logcapture`), writes the log in batches with a
   heartbeat, polls the database for a stop request (or its report being
   deleted or closed by recovery), enforces the timeout (SIGTERM to the
   group, SIGKILL after the grace period), survives database errors, and
   when the child has exited kills what the run left behind (the process
   group, and in a spooler the orphans re-parented to its fork server).
3. **Finish**: the report gets its result and end reason, the task its last
   result and new status, the run history its row, in one transaction
   (retried while the database is unreachable); then old reports are pruned
   and the runs deferred behind this one spooled.

A one-shot run costs the database two durable commits (claim, end) and, where
the database has ``UPDATE ... RETURNING``, six statements besides SQLite's two
``BEGIN``: the task read, the claim's UPDATE and Report INSERT, the report's
and the task's UPDATE and the history INSERT of the end (issue 17,
``bench/README.md``).

Recovery after a crash (:mod:`taskmanager.recovery`) relies on what is
recorded here: host, supervisor pid and start time, child pid (= process
group) and start time, heartbeat, and the ``TASKMANAGER_RUN`` marker in the
environment of the run's processes. See ``docs/lifecycle.rst``.

The run path is a package of small modules, in import order:

* :mod:`.failure`: what the log shows of the exception that ended a command;
* :mod:`.child_main`: what runs inside the forked child;
* :mod:`.prefork`: what a forking process does around the fork;
* :mod:`.orphans`: the run's orphans, reaped when they exit, killed at the end;
* :mod:`.hugepages`: the fork server's heap in huge pages (a cheaper fork and exit per child);
* :mod:`.forkserver_main`: what runs inside a spooler's fork server;
* :mod:`.forkserver`: the fork server's design, and the spooler's end of it;
* :mod:`.child`: the supervisor's handle on the child (:class:`Child`);
* :mod:`.statements`: the run path's hot statements, prepared by :mod:`taskmanager.prepared`
  (compiled once per process, ``UPDATE ... RETURNING``);
* :mod:`.reportlog`: the log on its way to the database (``ReportLog``);
* :mod:`.reuse`: a child serving several runs of one command (``TASKMANAGER_RUNS_PER_CHILD``);
* :mod:`.output`: reading what the child writes on its pipes (``ChildOutput``);
* :mod:`.follow`: following the child until it exits (``ChildFollower``);
* :mod:`.outcome`: the run's end (``end_reason``, ``RunEnd``);
* :mod:`.claim`: :func:`claim`;
* :mod:`.supervisor`: :class:`Supervisor`, which wires the parts;
* this module: :func:`execute`, the one entry point, and phase timing.

The names tests, bench and docs use are re-exported here.
"""

import json
import logging
import time

from django.db import InterfaceError, OperationalError, connections

from .. import db
from ..models import Report, Task
from .child import Child, prepare_spooler
from .childsetup import working_dir
from .claim import claim, local_tz, process_start_time, runnable_argv
from .supervisor import Supervisor, current_report_id

# The names the tests, the bench and the docs use (taskmanager.runner.X).
__all__ = [
    "Child",
    "Supervisor",
    "claim",
    "current_report_id",
    "drop_broken_connections",
    "end_status",
    "execute",
    "local_tz",
    "prepare_spooler",
    "process_start_time",
    "run_marker",
    "runnable_argv",
    "working_dir",
]

logger = logging.getLogger("taskmanager.runner")
# Phase times of each run (perf_counter marks) at DEBUG, for bench/; off by
# default, and the marks themselves cost well under a microsecond each.
timing_logger = logging.getLogger("taskmanager.runner.timing")


def run_marker(report: Report) -> str:
    """Return the report's ``TASKMANAGER_RUN`` marker (:meth:`Report.run_marker`)."""
    return report.run_marker()


def end_status():
    """The expression of a task's status when its run ends (:meth:`Task.end_status`)."""
    return Task.end_status()


@db.pin
def execute(task_id: int, token: str, trigger: str) -> Report | None:
    """Run the task for one spool entry, if its token is still current.

    Return the run's Report, or None when the entry was stale and consumed.
    The process's database connections are kept from one run to the next,
    but those that are broken or obsolete are closed before and after (see
    :func:`drop_broken_connections`; the spooler never closes them itself).
    """
    entered, entered_wall = time.perf_counter(), time.time()
    drop_broken_connections()
    try:
        try:
            run = claim(task_id, token, trigger, prefork=True)
        except (OperationalError, InterfaceError):
            # A kept connection the server dropped meanwhile (DB restart,
            # pg_terminate_backend, an idle timeout) fails on first use:
            # reconnect and claim again. The claim is one transaction, and a
            # child forked for it was killed, so a failed attempt left nothing.
            logger.warning("Database connection lost before claiming task %s; reconnecting.", task_id)
            connections.close_all()
            run = claim(task_id, token, trigger, prefork=True)
        if run is None:
            return None
        task, report = run
        supervisor = Supervisor(task, report)
        supervisor.run()
        if timing_logger.isEnabledFor(logging.DEBUG):
            _log_timing(report, entered, entered_wall, supervisor.marks)
        return report
    finally:
        drop_broken_connections()


def drop_broken_connections() -> None:
    """Close this thread's database connections that are broken or obsolete; keep the others.

    A spooler process lives long, like a web worker with persistent
    connections, and opening and closing a connection for every run costs
    more than the run's own queries (on SQLite the last connection to close
    checkpoints the WAL file and syncs it to disk). So a connection is kept
    across runs, whatever ``CONN_MAX_AGE`` says when it is 0 (Django's
    default, meant for requests), and closed, as Django does between
    requests, when an error occurred on it and it no longer works, when
    autocommit was left changed, or when it is older than a positive
    ``CONN_MAX_AGE``; with ``CONN_HEALTH_CHECKS`` it is checked at its first
    use in the next run. Else one the server dropped while it was idle fails
    the next claim, which reconnects and retries (:func:`execute`).
    Other code of the spooler (recovery, heartbeat) still calls
    ``close_old_connections()``, which applies ``CONN_MAX_AGE`` as it is.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue  # a caller's transaction (the immediate backend) is not ours to end
        # With CONN_HEALTH_CHECKS, Django checks the connection at its first
        # use after this, as at the start of a request.
        conn.health_check_done = False
        if conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
        elif conn.settings_dict["CONN_MAX_AGE"] and conn.close_at is not None:
            if time.monotonic() >= conn.close_at:
                conn.close()


def _log_timing(report: Report, entered: float, entered_wall: float, marks: dict) -> None:
    """Log the run's phase marks as JSON: milliseconds since the spool entry was handled."""
    committed = getattr(report, "claim_committed", None)
    if committed is not None:
        marks["claim_committed"] = committed
    timing_logger.debug(
        "%s",
        json.dumps(
            {
                "task": report.task_id,
                "report": report.pk,
                "entered": entered_wall,
                "ms": {name: round((at - entered) * 1000, 3) for name, at in marks.items()},
            }
        ),
    )

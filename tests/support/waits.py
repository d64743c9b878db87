"""Waiting for what the spoolers do: polls with a deadline, never a fixed sleep.

A deadline is only a failure's limit: waiting on a condition costs what the
condition takes, so the deadlines are generous (issue 13, item 10: on a
loaded 2-core machine the uWSGI spoolers, which run at nice 19, and the
commands they fork get a small share of the CPU; a notice that takes a
fraction of a second took over 20 s under a load of 10). Every
deadline is multiplied by ``TM_TEST_TIMEOUT_SCALE`` (default 1, ``scale.scaled``),
for slower machines still. This is the one module of the tests that sleeps
(tests/test_layout.py holds the others to it). It imports the models only
inside the helpers that need them: ``uwsgi_server`` polls with
:func:`wait_for` also in the benchmarks, before Django is set up.
"""

import os
import time

from .scale import scaled

#: The deadline of a wait that names none, in seconds (before scaling).
DEFAULT_TIMEOUT = 60.0


def wait_for(predicate, timeout=DEFAULT_TIMEOUT, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; return it or fail after ``scaled(timeout)``."""
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (round(limit, 1), message))
        time.sleep(interval)


def finished_reports(task, count=1, timeout=DEFAULT_TIMEOUT):
    """Wait until ``task`` has ``count`` finished reports or more; return them, oldest first."""
    from taskmanager.models import Report  # Deferred: see the module's docstring.

    finished = Report.objects.filter(task=task, finished_datetime__isnull=False).order_by("pk")
    return wait_for(
        lambda: finished.count() >= count and list(finished),
        timeout=timeout,
        message="%d finished report(s) of %s" % (count, task.name),
    )


def finished_report(task, timeout=DEFAULT_TIMEOUT):
    """Wait for a finished report of ``task``; return the latest."""
    return finished_reports(task, timeout=timeout)[-1]


def running_report(task, timeout=DEFAULT_TIMEOUT):
    """Wait until the task's run has its child process and a first line; return the report."""
    from taskmanager.models import Report  # Deferred: see the module's docstring.

    return wait_for(
        lambda: Report.objects.filter(
            task=task, finished_datetime__isnull=True, pid__isnull=False, lines__gte=1
        ).first(),
        timeout=timeout,
        message="the run of %s to start" % task.name,
    )


def wait_gone(path, timeout=DEFAULT_TIMEOUT):
    """Wait until the file at ``path`` (a spool file) no longer exists."""
    wait_for(lambda: not os.path.exists(path), timeout=timeout, message="%s to be consumed" % path)


def recovery_ticks(node, count, timeout=DEFAULT_TIMEOUT):
    """Wait until the spoolers of ``node`` (a UwsgiServer) recorded ``count`` more heartbeats.

    Each recovery timer tick records the node's heartbeat (SpoolerHeartbeat),
    then runs the periodic recovery pass (a starting spooler records one,
    then runs the start-up recovery). With one spooler process, once
    ``count`` heartbeats newer than the one at the call were seen, at least
    ``count - 1`` whole passes ran after the call; with several, passes may
    overlap (a tick goes to an idle one): count more. The event proves the spoolers went past a point
    (instead of a sleep that hopes they did); a heartbeat missed by the
    polling only makes the wait longer.
    """
    from taskmanager.models import SpoolerHeartbeat  # Deferred: see the module's docstring.

    beats = SpoolerHeartbeat.objects.filter(node__endswith=":%s" % node.spool_dir)

    def last_seen():
        beat = beats.first()
        return beat and beat.last_seen

    start = last_seen()
    new = set()

    def counted():
        value = last_seen()
        if value is not None and value != start:
            new.add(value)
        return len(new) >= count

    wait_for(counted, timeout=timeout, interval=0.02, message="%d more recovery tick(s) of the node" % count)

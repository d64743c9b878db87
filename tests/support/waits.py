"""Waiting for what the spoolers do: polls with a deadline, never a fixed sleep."""

import os
import time

from taskmanager.models import Report


def wait_for(predicate, timeout=20.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; return it or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, message))


def finished_reports(task, count=1, timeout=30):
    """Wait until ``task`` has ``count`` finished reports or more; return them, oldest first."""
    finished = Report.objects.filter(task=task, finished_datetime__isnull=False).order_by("pk")
    return wait_for(
        lambda: finished.count() >= count and list(finished),
        timeout=timeout,
        message="%d finished report(s) of %s" % (count, task.name),
    )


def finished_report(task, timeout=30):
    """Wait for a finished report of ``task``; return the latest."""
    return finished_reports(task, timeout=timeout)[-1]


def running_report(task, timeout=30):
    """Wait until the task's run has its child process and a first line; return the report."""
    return wait_for(
        lambda: Report.objects.filter(
            task=task, finished_datetime__isnull=True, pid__isnull=False, lines__gte=1
        ).first(),
        timeout=timeout,
        message="the run of %s to start" % task.name,
    )


def wait_gone(path, timeout=30):
    """Wait until the file at ``path`` (a spool file) no longer exists."""
    wait_for(lambda: not os.path.exists(path), timeout=timeout, message="%s to be consumed" % path)

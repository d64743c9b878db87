"""The django.tasks functions of the tests (tests/test_django_tasks.py), and the view that enqueues
one from a uWSGI web worker (``/tm-test/enqueue/``). Imported only where django.tasks or its
backport is installed (tests/urls.py asks ``taskmanager.djangotasks.api``)."""

import asyncio
import datetime
import json
import logging
import os
import time

from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone

from taskmanager.djangotasks.api import task, task_backends

from .djtasks_ahead import imported_by

logger = logging.getLogger("tests.djtasks")


@task
def add(a, b):
    """Log at WARNING (the log keeps levels) and return the sum."""
    logger.warning("adding %s and %s", a, b)
    print("the sum is %s" % (a + b))
    return a + b


@task
def fail(message):
    """Raise ValueError(message)."""
    logger.info("about to fail")
    raise ValueError(message)


@task
def sleep(seconds):
    """Sleep ``seconds`` (a run for Stop and the time-out); return them."""
    print("sleeping", flush=True)
    time.sleep(seconds)
    return seconds


@task
def give(kind):
    """Return or raise what is hard to store: ``bigint`` (an int JSON cannot write: over Python's
    4300-digit limit), ``huge_error`` (raise a ValueError of 2 MB), ``date`` (no JSON type)."""
    if kind == "bigint":
        return 10**5000
    if kind == "date":
        return datetime.date(2026, 12, 6)
    if kind == "huge_error":
        raise ValueError("x" * 2_000_000)
    raise LookupError(kind)


@task
async def greet(name):
    """An ``async def`` function: awaits, logs, and returns whether it ran in an event loop."""
    await asyncio.sleep(0)
    logger.warning("greeting %s", name)
    return {"greeting": "hello %s" % name, "in_loop": asyncio.get_running_loop().is_running()}


@task
def pid_a():
    """Return the pid of the process it runs in (a reused child serves one function only)."""
    return os.getpid()


@task
def pid_b():
    """As pid_a, another function."""
    return os.getpid()


@task(takes_context=True)
def mark(context, path):
    """Append this call's result id to the file ``path`` (1,000 quick calls: each runs once)."""
    with open(path, "a") as fh:  # one short O_APPEND write: lines of concurrent runs do not mix
        fh.write(context.task_result.id + "\n")


FUNCTIONS = {f.name: f for f in (add, fail, sleep, give, greet, pid_a, pid_b, mark, imported_by)}


def enqueue_view(request):
    """Enqueue ``?task=<name>&args=<JSON list>`` inside a transaction; answer ``{"id": ..., "ids": [...]}``.

    Optional: ``delay`` (seconds: ``run_after`` that far ahead), ``queue`` (blank: the task's), ``priority``,
    ``n`` (calls).
    """
    function = FUNCTIONS[request.GET["task"]]
    options = {}
    if "delay" in request.GET:
        options["run_after"] = timezone.now() + datetime.timedelta(seconds=float(request.GET["delay"]))
    if request.GET.get("queue"):
        options["queue_name"] = request.GET["queue"]
    if "priority" in request.GET:
        options["priority"] = int(request.GET["priority"])
    function = function.using(**options)
    args = json.loads(request.GET.get("args", "[]"))
    with transaction.atomic():
        results = [function.enqueue(*args) for _ in range(int(request.GET.get("n", 1)))]
    return JsonResponse({"id": results[0].id, "ids": [r.id for r in results], "status": results[0].status})


def result_view(request):
    """``?id=<result id>``: the result as this web worker reads it (``get_result``), as JSON."""
    result = task_backends["default"].get_result(request.GET["id"])
    value = result.return_value if result.status == "SUCCESSFUL" else None
    return JsonResponse({"status": result.status, "return_value": value, "task": result.task.module_path})

"""The django.tasks functions of the tests (tests/test_django_tasks.py), and the view that enqueues
one from a uWSGI web worker (``/tm-test/enqueue/``). Imported only where django.tasks or its
backport is installed (tests/urls.py asks ``taskmanager.djangotasks.api``)."""

import json
import logging
import time

from django.db import transaction
from django.http import JsonResponse

from taskmanager.djangotasks.api import task

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
    4300-digit limit), ``huge_error`` (raise a ValueError of 2 MB)."""
    if kind == "bigint":
        return 10**5000
    if kind == "huge_error":
        raise ValueError("x" * 2_000_000)
    raise LookupError(kind)


def enqueue_view(request):
    """Enqueue ``?task=<name>&args=<JSON list>[&queue=<name>]`` inside a transaction; answer ``{"id": ...}``."""
    function = {"add": add, "fail": fail, "sleep": sleep, "give": give}[request.GET["task"]]
    if request.GET.get("queue"):
        function = function.using(queue_name=request.GET["queue"])
    with transaction.atomic():
        result = function.enqueue(*json.loads(request.GET.get("args", "[]")))
    return JsonResponse({"id": result.id, "status": result.status})

"""The django.tasks functions of ``bench/bench_tasks.py`` and the view that enqueues them in a web worker.

Django 6.0+ only (``bench/urls.py`` routes the view there, and only
``bench_tasks.py`` imports this module).

* ``noop()`` appends its result's id to ``$TM_BENCH_DIR/noop.log`` (one
  short ``O_APPEND`` write, whole) and returns None: the throughput's calls,
  each call's runs counted from that file;
* ``stamp()`` returns ``time.time()`` taken as it is entered: the latency's
  calls (the bench, the web worker and the spooler's child share the
  machine's clock);
* ``POST /bench/tasks/enqueue/`` with ``task`` (noop or stamp), ``count``
  and ``backend`` (an alias of ``TASKS``) enqueues ``count`` calls in one
  transaction (one commit, then a spool hint per call) and answers
  ``{"before": <time.time() just before the first enqueue()>, "ids": [...]}``.
  No login and no CSRF: this view exists only in the bench project, as
  ``floor.py``'s.
"""

import json
import os
import time

from django.db import transaction
from django.http import HttpResponse, HttpResponseNotAllowed
from django.tasks import task
from django.views.decorators.csrf import csrf_exempt


@task(takes_context=True)
def noop(context):
    line = ("%s\n" % context.task_result.id).encode()
    fd = os.open(os.path.join(os.environ["TM_BENCH_DIR"], "noop.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@task
def stamp():
    return time.time()


@csrf_exempt
def enqueue_view(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    function = {"noop": noop, "stamp": stamp}[request.POST.get("task", "noop")]
    function = function.using(backend=request.POST.get("backend", "default"))
    count = int(request.POST.get("count", "1"))
    before = time.time()
    with transaction.atomic():
        ids = [function.enqueue().id for _ in range(count)]
    return HttpResponse(json.dumps({"before": before, "ids": ids}), content_type="application/json")

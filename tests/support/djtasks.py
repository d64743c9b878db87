"""django.tasks from the tests (where it or its backport is installed): enqueue through a uWSGI web worker, wait for rows."""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from taskmanager.models import DjangoTaskResult

from .hosts import SCRIPT, UNSHARE, namespaces_unavailable
from .uwsgi_server import ROOT, node_env
from .waits import wait_for

FINISHED = ["SUCCESSFUL", "FAILED"]
#: A queue of tests/settings.py's TASKS that only the nodes a test starts serve (not the session's
#: server, another live node on the test database: its periodic pass would run a test's calls too).
NODE_QUEUE = "node-only"


def enqueue(server, name: str, *args, **params) -> str:
    """Enqueue the test function ``name`` in a web worker of ``server`` (``/tm-test/enqueue/``); return its id.

    ``params`` are the view's: ``delay``, ``queue``, ``priority``, ``n`` (then see :func:`enqueue_many`).
    """
    return enqueue_many(server, name, *args, **params)[0]


def enqueue_many(server, name: str, *args, **params) -> list[str]:
    """As :func:`enqueue`; return the ids of the ``n`` calls (one transaction)."""
    query = urllib.parse.urlencode({"task": name, "args": json.dumps(list(args)), **params})
    with urllib.request.urlopen("%s/tm-test/enqueue/?%s" % (server.url, query), timeout=120) as resp:
        answer = json.loads(resp.read())
    assert answer["status"] == "READY", answer
    return answer["ids"]


def result_in_web_worker(server, result_id: str) -> dict:
    """The result ``result_id`` as a web worker of ``server`` reads it with ``get_result``."""
    query = urllib.parse.urlencode({"id": result_id})
    with urllib.request.urlopen("%s/tm-test/result/?%s" % (server.url, query), timeout=30) as resp:
        return json.loads(resp.read())


def finished_row(result_id: str, timeout=60.0):
    """Wait until the row ``result_id`` is SUCCESSFUL or FAILED and its run's report closed; return it."""

    def done():
        row = DjangoTaskResult.objects.filter(pk=result_id, status__in=FINISHED).first()
        # A run's report closes just after its row ends (a row never run has none).
        return row if row is not None and (row.report is None or row.report.finished_datetime) else None

    return wait_for(done, timeout=timeout, message="task result %s to finish" % result_id)


def tm_enqueue(name: str, *args, queue: str = "", elsewhere: bool = False) -> str:
    """Enqueue ``name`` with ``manage.py tm_enqueue`` (a process of its own, no uWSGI); return the result's id.

    ``elsewhere``: on "another machine" (a UTS + PID namespace of its own, host ``elsewhere.invalid``:
    tests/support/hosts.py), which can write no spool hint, neither through uWSGI nor into a local
    node's directory (``djangotasks/hints.py``: no node of its host name), so that only a spooler
    node's periodic pass runs the call. Skips the test where namespaces cannot be had.
    """
    command = [sys.executable, "-m", "django", "tm_enqueue", name, *(json.dumps(a) for a in args)]
    if queue:
        command += ["--queue", queue]
    if elsewhere:
        why = namespaces_unavailable()
        if why:
            pytest.skip("another machine cannot be simulated here: %s" % why)
        command = [*UNSHARE, "sh", "-c", SCRIPT, "sh", "elsewhere.invalid", *command]
    env = {**os.environ, **node_env(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()

"""Settings of the bench project: the test project with the SHIPPED taskmanager settings.

On top of ``tests.settings`` (database chosen by ``TM_TEST_DB`` and
``TM_TEST_SERVER_DB``, as in the tests):

* every ``TASKMANAGER_*`` override of the test project is dropped except the
  backend, so the run path runs with the app's defaults (forked child,
  retention, notifications as shipped); a bench that needs other values
  says so in ``TM_TEST_SETTINGS`` (as the tests do), and those apply;
* the web workers' database connections kept between requests, as the README
  and the demo configure them (``CONN_MAX_AGE`` 60, ``CONN_HEALTH_CHECKS``;
  the tests keep Django's default, 0): a Start press otherwise opens one, about
  1 ms of it on this kind of machine. ``TM_TEST_SETTINGS`` with
  ``CONN_MAX_AGE`` measures another value (``0``: Django's default);
* the bench-only app ``bench.benchapp`` (floor spool function, commit
  counters) and its URL; django-tasks-db's app and a ``"db"`` django.tasks
  backend where it is installed (``bench_tasks.py``);
* the logger ``taskmanager.runner.timing`` (one JSON line per run with the
  end time of each phase) goes to ``$TM_BENCH_DIR/timing.log``, unless
  ``TM_BENCH_TIMING`` is ``0`` (a bench that reads no timing log).
"""

import json
import os
from importlib.util import find_spec

from tests import settings as _test_settings
from tests.settings import *  # noqa: F403

for _name in dir(_test_settings):
    if _name.startswith("TASKMANAGER_") and _name != "TASKMANAGER_BACKEND":
        del globals()[_name]
# What a bench asks for explicitly (bench_several_hosts.py: second-scale recovery) wins.
for _name, _value in json.loads(os.environ.get("TM_TEST_SETTINGS") or "{}").items():
    if _name.startswith("TASKMANAGER_"):
        globals()[_name] = _value

if "CONN_MAX_AGE" not in json.loads(os.environ.get("TM_TEST_SETTINGS") or "{}"):
    DATABASES["default"].update(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)  # noqa: F405 - from tests.settings

INSTALLED_APPS = [*_test_settings.INSTALLED_APPS, "bench.benchapp"]

# bench_tasks.py measures django-tasks-db's db_worker beside the spooler on
# the same database: where it is installed (with Django 6.0+), its app and a
# "db" backend next to the test project's "default" (the spooler's).
if find_spec("django.tasks") and find_spec("django_tasks_db"):
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {**_test_settings.TASKS, "db": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
ROOT_URLCONF = "bench.urls"

_bench_dir = os.environ.get("TM_BENCH_DIR")
# TM_BENCH_TIMING=0: a server whose bench reads no timing log (bench/common.py).
if _bench_dir and os.environ.get("TM_BENCH_TIMING") != "0":
    LOGGING = {
        **_test_settings.LOGGING,
        "formatters": {"bare": {"format": "%(message)s"}},
        "handlers": {
            **_test_settings.LOGGING["handlers"],
            "timing": {
                "class": "logging.FileHandler",
                "filename": os.path.join(_bench_dir, "timing.log"),
                "formatter": "bare",
            },
        },
        "loggers": {
            "taskmanager.runner.timing": {"handlers": ["timing"], "level": "DEBUG", "propagate": False},
        },
    }

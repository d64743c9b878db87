"""Settings of the test project (also loaded by the uWSGI server the tests start).

``TM_TEST_DB`` picks the database: ``sqlite`` (default), ``postgresql`` or
``mariadb``. ``TM_TEST_SERVER_DB`` is set by the test suite for the uWSGI
server so that it uses the test database pytest-django created.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# A stand-in for a third-party app installed with pip (tests/fake_site/README.txt).
FAKE_SITE_PACKAGES = str(Path(__file__).resolve().parent / "fake_site" / "site-packages")
if FAKE_SITE_PACKAGES not in sys.path:
    sys.path.append(FAKE_SITE_PACKAGES)
SECRET_KEY = "taskmanager-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = os.environ.get("TM_TEST_TIME_ZONE", "Europe/Rome")
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("it", "Italiano")]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskmanager",
    "tests.testapp",
    "tm_fakeext",
]
# The tests run as root, so every uWSGI they start would warn that it does
# (taskmanager.W014, also a banner on the pages the doc images show);
# tests/test_security.py checks the warning with it unsilenced.
SILENCED_SYSTEM_CHECKS = ["taskmanager.W014"]
MIDDLEWARE = [
    # What a request did to the database, when a test asks (tests/support/sqlcount.py).
    "tests.support.sqlcount.CountSqlMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Accept-Language picks the admin's language (tests of the Italian translation).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tests.middleware.ClearContentTypeCacheMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
WSGI_APPLICATION = "tests.wsgi.application"

_db = os.environ.get("TM_TEST_DB", "sqlite")
_server_db = os.environ.get("TM_TEST_SERVER_DB")
if _db == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _server_db or "taskmanager",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": 5432,
            "TEST": {"NAME": "test_taskmanager_%d" % os.getpid()},
        }
    }
elif _db == "mariadb":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _server_db or "taskmanager",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": 3306,
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {
                "NAME": "test_taskmanager_%d" % os.getpid(),
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_unicode_ci",
            },
        }
    }
else:
    _dir = os.environ.get("TM_TEST_DB_DIR") or tempfile.gettempdir()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _server_db or os.path.join(_dir, "taskmanager-tests.sqlite3"),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": os.path.join(_dir, "test-taskmanager-%d.sqlite3" % os.getpid())},
        }
    }

# A uWSGI node standing for another machine (tests/support/clock.py) has a
# host name of its own: the other nodes cannot see its processes.
if os.environ.get("TM_TEST_HOSTNAME"):
    import socket

    _hostname = os.environ["TM_TEST_HOSTNAME"]
    socket.gethostname = lambda: _hostname

# A node of a newer code version (tests/test_payload_version.py): the payload
# version of the spool entries it writes and runs.
if os.environ.get("TM_TEST_PAYLOAD_VERSION"):
    from taskmanager import spoolfiles as _spoolfiles

    _spoolfiles.PAYLOAD_VERSION = int(os.environ["TM_TEST_PAYLOAD_VERSION"])

# Django's default hasher (PBKDF2, a million rounds) takes 0.3-0.8 s per password
# on the CI machine: once to make each test's users, once more at each login to
# a uWSGI. The tests check rights, not the hashing: a fast hasher (as Django's
# testing docs advise) saves about a second per test that logs in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The django.tasks backend (issue 18; tests/test_django_tasks.py). Django 6.0+ reads it;
# Django 5.2 has no django.tasks and ignores the setting.
TASKS = {
    "default": {
        "BACKEND": "taskmanager.djangotasks.backend.SpoolerTaskBackend",
        "QUEUES": ["default", "node-only"],
    }
}

TASKMANAGER_STOP_GRACE_SECONDS = 1.0
TASKMANAGER_BACKEND = os.environ.get("TM_TEST_BACKEND", "taskmanager.spooler.uwsgi.UwsgiBackend")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}

# A uWSGI instance started by a test may override settings with a JSON object
# in TM_TEST_SETTINGS (names to values); "CONN_MAX_AGE" and "ATOMIC_REQUESTS"
# apply to the database, "SQLITE_TIMEOUT" is its busy timeout, "EXTRA_DATABASES"
# ({alias: settings}) adds databases beside the test database.
for _name, _value in json.loads(os.environ.get("TM_TEST_SETTINGS") or "{}").items():
    if _name in ("CONN_MAX_AGE", "ATOMIC_REQUESTS"):
        DATABASES["default"][_name] = _value
    elif _name == "EXTRA_DATABASES":
        DATABASES.update(_value)
    elif _name == "READ_REPLICA":  # a stale copy the task manager's reads go to (tests/routers.py)
        DATABASES["replica"] = {**DATABASES["default"], "NAME": _value}
        DATABASE_ROUTERS = ["tests.routers.ReplicaRouter"]
    elif _name == "DATABASE_PORT":  # e.g. a TCP proxy of the test (tests/support/tcpproxy.py)
        DATABASES["default"]["PORT"] = _value
    elif _name == "SQLITE_TIMEOUT":  # the busy timeout of an SQLite database, in seconds
        DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = _value
    else:
        globals()[_name] = _value

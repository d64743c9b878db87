"""Settings of the demo project that ``make demo`` serves.

Everything the demo writes (the SQLite database, the spool directory, the
collected static files, the secret key) lives under ``demo/var/``, which is
kept across restarts and ignored by git: delete it to start from scratch.
"""

import os
import secrets
from importlib.util import find_spec
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# DEMO_VAR_DIR puts it elsewhere (the tests prepare a demo in a temporary directory).
VAR_DIR = Path(os.environ.get("DEMO_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(exist_ok=True)


def _secret_key() -> str:
    """Return the demo's secret key, created once in var/secret_key (never committed)."""
    path = VAR_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _local_time_zone() -> str:
    """Return the machine's IANA time zone name (so scheduled times read as local), else UTC.

    ``DEMO_TIME_ZONE`` overrides it, e.g. ``make demo DEMO_TIME_ZONE=Europe/Rome``.
    """
    if os.environ.get("DEMO_TIME_ZONE"):
        return os.environ["DEMO_TIME_ZONE"]
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    if marker in target:
        return target.split(marker, 1)[1]
    return "UTC"


SECRET_KEY = _secret_key()
# The demo listens on 127.0.0.1 only; DEBUG stays off so that it behaves as a
# real deployment would (static files are served by uWSGI's static-map).
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskmanager",
    "demoapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin in the browser's language (Accept-Language).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demoproject.urls"
WSGI_APPLICATION = "demoproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is shared by the web workers and the spooler processes, so it needs:
# - WAL, so that readers (the admin) never wait for the writer (a running task's log);
# - IMMEDIATE transactions, so that a transaction takes the write lock when it
#   begins instead of failing at once with "database is locked" when it first
#   writes after a read;
# - a busy timeout (seconds), so that a writer waits for the lock instead of failing.
# Whatever the database, the web workers keep their connection between requests
# (CONN_MAX_AGE, seconds): opening one is otherwise part of every request, about
# 1 ms of a Start press on a small machine. CONN_HEALTH_CHECKS makes Django replace a
# connection the database dropped (a restart) before a request uses it.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "demo.sqlite3",
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

AUTH_PASSWORD_VALIDATORS = []  # the demo sets the password given to `make demo`

LANGUAGE_CODE = "en-us"
# The languages the app is translated into: a browser asking for another
# gets the whole admin in English, not Django's part only in its language.
LANGUAGES = [("en", "English"), ("it", "Italiano")]
TIME_ZONE = _local_time_zone()
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django.tasks on the uWSGI spoolers: the functions of demoapp/tasks.py,
# enqueued from the admin (Demo > Try django.tasks), run there as command
# runs do, their results under Task manager > Task results. The API is
# Django's own from 6.0, the django-tasks backport's on 5.2 (make demo
# installs Django 6.1 where it finds a Python 3.12 or later, else Django 5.2
# and the backport: demo/demo_venv.py). Where neither is installed the demo
# leaves the setting out and its page says what is missing.
if find_spec("django.tasks") or find_spec("django_tasks"):
    TASKS = {
        "default": {
            "BACKEND": "taskmanager.djangotasks.backend.SpoolerTaskBackend",
            "QUEUES": ["default"],
            # Seconds a call may run before it is stopped and FAILED (TimedOut).
            "OPTIONS": {"TIMEOUT": 300},
        }
    }

# Where the spooler's log lines and the runner's messages go: the terminal
# that runs `make demo`.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "taskmanager": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The demo's functions log at DEBUG too: their runs' logs keep every level.
        "demoapp": {"level": "DEBUG"},
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

"""The app's settings: one entry point, ``TASKMANAGER_*`` names read lazily.

Each setting is looked up on the project's ``django.conf.settings`` at the
moment it is used, so ``override_settings`` in tests and per-process settings
work without any cache to invalidate.
"""

from django.conf import settings as django_settings
from django.utils.translation import gettext

DEFAULTS = {
    # Dotted path of the spooler backend class (see taskmanager.spooler).
    "BACKEND": "taskmanager.spooler.uwsgi.UwsgiBackend",
    # Reports kept per task (older finished ones are deleted after each run).
    "REPORTS_KEPT": 5,
    # Slim run records (time, duration, result) kept per task for the chart of last runs.
    "HISTORY_KEPT": 100,
    # Days audit entries are kept (taskmanager.audit); older ones are deleted
    # by the periodic recovery pass. 0 keeps them for ever.
    "AUDIT_DAYS": 365,
    # Days finished django.tasks results (SUCCESSFUL, FAILED) are kept after
    # they ended; older ones are deleted by the periodic recovery pass
    # (taskmanager.retention.prune_results). 0 keeps them for ever.
    "RESULTS_DAYS": 7,
    # Milliseconds between two refreshes of status and progress in the admin pages.
    "ADMIN_POLL_MS": 2000,
    # Lines of the log shown as the tail of a report.
    "REPORT_TAIL_LINES": 10,
    # Seconds between SIGTERM and SIGKILL when a run is stopped or times out.
    "STOP_GRACE_SECONDS": 3.0,
    # Default maximum duration of a run in seconds; None means no limit.
    "DEFAULT_TIMEOUT": None,
    # Bytes of log text stored per run; past it lines are counted, not stored.
    "MAX_LOG_BYTES": 200 * 1024 * 1024,
    # Log lines written per database batch, and the batch's byte bound.
    "LOG_BATCH_LINES": 1000,
    "LOG_BATCH_BYTES": 512 * 1024,
    # Level from which the run captures the logging records of loggers whose
    # level comes from the root logger (a name such as "INFO", or a number);
    # loggers with a level of their own keep it (taskmanager.logcapture).
    "LOG_LEVEL": "INFO",
    # Runs of one command a child process serves before it is replaced (1: a
    # fresh child for every run). Above 1 a child that ended its run cleanly
    # waits for the next run of the same command (taskmanager.runner.reuse).
    "RUNS_PER_CHILD": 1,
    # A reused child whose resident memory passes this many MiB after a run is
    # replaced (only with RUNS_PER_CHILD above 1).
    "CHILD_MAX_MEMORY_MB": 512,
    # Seconds between two flushes of pending log lines while a command runs.
    "LOG_FLUSH_SECONDS": 0.5,
    # Seconds between two checks of the database for a stop request.
    "STOP_POLL_SECONDS": 0.5,
    # Seconds between two heartbeats of a supervising spooler process.
    "HEARTBEAT_SECONDS": 5.0,
    # A run whose heartbeat is older than this is taken for interrupted.
    "HEARTBEAT_TIMEOUT": 60.0,
    # Fencing (taskmanager.fencing): a supervisor that could not renew its
    # run's heartbeat for HEARTBEAT_TIMEOUT minus this kills its command;
    # other nodes wait HEARTBEAT_TIMEOUT plus this before closing the run.
    # None: a sixth of HEARTBEAT_TIMEOUT (10 s of the default 60 s).
    "FENCE_MARGIN": None,
    # Seconds after which the admin warns that a spooler node holding pending
    # tasks has not been seen (its SpoolerHeartbeat is older); 0 = never warn.
    "NODE_TIMEOUT": 300.0,
    # Seconds a node's clock may differ from the database server's before the
    # admin's banner and check taskmanager.W017 report it (0 = never).
    "CLOCK_TOLERANCE": 5.0,
    # Seconds between two periodic recovery passes in an idle spooler
    # process (closes runs whose supervisor died on another host); 0 = only
    # at spooler start.
    "RECOVERY_SECONDS": 30.0,
    # Seconds a pending run (a Scheduled/Spooled task, a queued "run now")
    # waiting on another node may be late, by the database's clock, before
    # the periodic pass of a spooler node serving its queue takes it over
    # (recovery/takeover.py); rows with no node at all are taken at once.
    # None: never take another node's rows.
    "TAKEOVER_GRACE": 60.0,
    # Rows the take-over pass takes at most per pass (the next pass goes on).
    "TAKEOVER_BATCH": 50,
    # Queue names a task may be pinned to (Task.queue; "" or "default" is
    # the default queue); None: any name.
    "QUEUES": None,
    # Queues this node's spoolers run; a task of another queue is left for
    # a node that serves it (Start writes no entry here, the claim refuses).
    "SERVE_QUEUES": ["default"],
    # Whether this instance has no spooler of its own: Start and Run now
    # then only record the pending row, and a spooler node's periodic pass
    # takes it. None: detected (under uWSGI, no 'spooler' nor
    # 'spooler-external' option).
    "WEB_ONLY": None,
    # Spool files the periodic recovery reads at most per pass when it looks
    # for superseded future entries to delete (recovery/sweep.py).
    "SPOOL_SWEEP_BATCH": 500,
    # Seconds a pending task's next execution may be late before the periodic
    # recovery sends one "overdue" notice and the admin shows it (0 = never).
    "OVERDUE_GRACE": 300.0,
    # Who may run what (taskmanager.policy, docs/security.rst).
    # Commands of Django's own and of third-party apps that collect_commands
    # adds active: app labels ("auth"), app names ("django.contrib.auth") or
    # one command of an app ("myapp.mycommand", "django.core.check"). The
    # commands of the project's own apps are added active without this.
    "ALLOWED_COMMANDS": [],
    # Command names (any app; or "app.command") that stay blocked even when
    # ALLOWED_COMMANDS or a superuser would activate them: shells, servers,
    # data dumps and loads, settings printers, password and token tools, code
    # generators. Replace the list only to add to it.
    "DANGEROUS_COMMANDS": [
        "shell",
        "dbshell",
        "runserver",
        "testserver",
        "flush",
        "sqlflush",
        "createsuperuser",
        "changepassword",
        "diffsettings",
        "dumpdata",
        "loaddata",
        "startapp",
        "startproject",
        "makemigrations",
        "migrate",
        "squashmigrations",
        "optimizemigration",
        "makemessages",
        "compilemessages",
        "collectstatic",
        "inspectdb",
        "sendtestemail",
        "remove_stale_contenttypes",
        "test",
        "shell_plus",
        "runserver_plus",
        "print_settings",
        "reset_db",
        "sqldsn",
        "sqlcreate",
        "dumpscript",
        "drf_create_token",
        # More of django-extensions: scripts and jobs that run code, schema
        # and data resets, fake passwords, servers, code generators, and
        # tools that print sessions' users or secrets.
        "runscript",
        "runjob",
        "runjobs",
        "reset_schema",
        "drop_test_database",
        "set_fake_passwords",
        "set_fake_emails",
        "set_default_site",
        "runprofileserver",
        "mail_debug",
        "delete_squashed_migrations",
        "create_command",
        "create_jobs",
        "create_template_tags",
        "admin_generator",
        "print_user_for_session",
        "syncdata",
        "export_emails",
        "generate_secret_key",
        "sync_s3",
    ],
    # Dangerous commands the project really wants runnable as tasks: each must
    # also be in ALLOWED_COMMANDS (or belong to a project app), and named here
    # as "name" or "app.command". Their arguments are locked by default.
    "ALLOWED_DANGEROUS_COMMANDS": [],
    # Deprecated (before the security model): names in UNSAFE_COMMANDS are
    # added to DANGEROUS_COMMANDS; ALLOW_UNSAFE_COMMANDS has no effect any
    # more (check taskmanager.W015 says so).
    "UNSAFE_COMMANDS": [],
    "ALLOW_UNSAFE_COMMANDS": False,
    # Directory the command runs in; None means settings.BASE_DIR, else the
    # working directory of the process that loaded the app.
    "WORKING_DIR": None,
    # Whether a spooler process forks the runs' children through a fork
    # server of its own (taskmanager/runner/forkserver.py) rather than itself.
    "FORK_SERVER": True,
    # Whether the fork server moves its heap into transparent huge pages
    # (taskmanager/runner/hugepages.py): less CPU per run, more memory.
    "FORK_SERVER_HUGE_PAGES": True,
    # Notifications (see docs/notifications.rst). Results whose end sends a
    # failure notice: any of "FAILED", "ERRORS", "WARNINGS".
    "NOTIFY_ON": ["FAILED"],
    # Send a "recovered" notice when a task that sent a failure notice next
    # ends with a result not in NOTIFY_ON.
    "NOTIFY_RECOVERED": True,
    # E-mail addresses notified; None means the addresses of settings.ADMINS,
    # an empty list sends no e-mail.
    "NOTIFY_EMAIL_RECIPIENTS": None,
    # Sender of the e-mails; None means settings.SERVER_EMAIL.
    "NOTIFY_EMAIL_FROM": None,
    # URL receiving a JSON POST per notice; None sends none.
    "NOTIFY_WEBHOOK_URL": None,
    # Slack bot token and channel (both needed; needs the "slack" extra).
    "NOTIFY_SLACK_TOKEN": None,
    "NOTIFY_SLACK_CHANNEL": None,
    # Slack Web API base URL (change it only for a proxy or a test server).
    "NOTIFY_SLACK_BASE_URL": "https://slack.com/api/",
    # Seconds each channel may take to send one notice.
    "NOTIFY_TIMEOUT": 5.0,
    # Scheme and host put before admin links in notices, e.g.
    # "https://ops.example.com"; None gives links without a host.
    "NOTIFY_SITE_URL": None,
    # Secrets kept out of the stored log (see taskmanager.redaction): more
    # settings whose values are secrets, and regular expressions whose
    # matches are.
    "REDACT_SETTINGS": [],
    "REDACT_PATTERNS": [],
}


def use_tz_problem() -> str | None:
    """The message for a project with ``USE_TZ = False``, or None.

    Schedules are computed with time-zone-aware datetimes. uWSGI serves
    without running system checks, so the form and Start say it themselves,
    naming the setting and the check (taskmanager.E003) instead of failing
    on "the current time must include a time zone".
    """
    if django_settings.USE_TZ:
        return None
    return gettext(
        "Schedules need USE_TZ = True in the project's settings, and it is False (system check "
        "taskmanager.E003 reports it): ask whoever deploys the project to set it."
    )


#: The name of the default queue (``Task.queue`` blank).
DEFAULT_QUEUE = "default"


def queue_name(queue: str) -> str:
    """The queue's name as settings spell it: blank is the default queue."""
    return queue or DEFAULT_QUEUE


def served_queues() -> list[str]:
    """The values of ``Task.queue`` this node's spoolers run (``SERVE_QUEUES``; the default queue as "" too)."""
    names = {str(name) for name in (app_settings.SERVE_QUEUES or ())}
    if DEFAULT_QUEUE in names or "" in names:
        names.update({DEFAULT_QUEUE, ""})
    return sorted(names)


def serves_queue(queue: str) -> bool:
    """Whether this node's spoolers run tasks of ``queue`` (``Task.queue``)."""
    return (queue or "") in served_queues()


class AppSettings:
    """Attribute access to ``TASKMANAGER_<NAME>`` with a default from DEFAULTS."""

    prefix = "TASKMANAGER_"

    def __getattr__(self, name: str):
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown taskmanager setting {name!r}")
        return getattr(django_settings, self.prefix + name, DEFAULTS[name])


app_settings = AppSettings()

"""System checks, ids ``taskmanager.E0xx`` (errors) and ``taskmanager.W0xx`` (warnings).

Every id, with what it means and how to fix it, is listed in ``docs/checks.rst``.

Three groups:

* **Settings** (E001-E009, W001-W009): the values of the ``TASKMANAGER_*``
  settings, the time zone settings the scheduler relies on, and the SQLite
  connection options that concurrent web and spooler processes need. These
  run with every management command, as Django's own checks do.
* **Database** (W007): the journal mode of an SQLite file; it queries the
  database, so it runs only when checks are given databases
  (``manage.py check --database default``, ``migrate``).
* **uWSGI** (E010-E019, W010-W019): the options of the uWSGI instance
  (``uwsgi.opt``). Django never runs checks inside uWSGI, so web worker 1
  runs every check above that needs no database query when it starts
  (:func:`log_start_checks`), logs each problem and writes one line saying
  what they found to the uWSGI log; each spooler process runs the uWSGI ones
  (:func:`log_uwsgi_checks`) and logs each problem (see
  :func:`install_uwsgi_checks`). Outside uWSGI they report nothing: running
  ``manage.py`` without uWSGI is normal.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import numbers
import os
import re
import socket
import sys
import zoneinfo
from collections.abc import Callable, Mapping

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import fencing, logcapture, processes, uwsgi_runtime
from .conf import DEFAULTS, AppSettings, app_settings
from .spooler import get_backend

logger = logging.getLogger("taskmanager.checks")

TAG = "taskmanager"
PREFIX = AppSettings.prefix
RESULTS = ("FAILED", "ERRORS", "WARNINGS")
#: uWSGI's default ``spooler-frequency``, in seconds.
UWSGI_DEFAULT_SPOOLER_FREQUENCY = 30
#: Below this many seconds, SQLite's busy timeout is reported (W005).
SQLITE_MIN_TIMEOUT = 10

# -- value rules ------------------------------------------------------------------
#
# Each rule takes the value and returns None when it is acceptable, else a
# short description of what is expected.


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def int_at_least(minimum: int) -> Callable:
    def rule(value):
        if not _is_int(value) or value < minimum:
            return "an integer of at least %d" % minimum
        return None

    return rule


def number_at_least(minimum: float, *, strict: bool = False, optional: bool = False) -> Callable:
    def rule(value):
        if optional and value is None:
            return None
        bad = not _is_number(value) or (value <= minimum if strict else value < minimum)
        if bad:
            what = "a number of seconds greater than %s" if strict else "a number of seconds of at least %s"
            return ("None or " if optional else "") + what % minimum
        return None

    return rule


def boolean(value):
    return None if isinstance(value, bool) else "True or False"


def optional_boolean(value):
    return None if value is None or isinstance(value, bool) else "None, True or False"


def queue_names(value):
    """A list of queue names (non-empty strings without spaces)."""
    if list_of_text(value) or not all(v and v == v.strip() and " " not in v for v in value):
        return "a list of queue names (non-empty strings without spaces)"
    return None


def optional_text(value):
    return None if value is None or (isinstance(value, str) and value) else "None or a non-empty string"


def optional_url(value):
    if value is None:
        return None
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return None
    return "None or an http:// or https:// URL"


def url(value):
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return None
    return "an http:// or https:// URL"


def list_of_text(value):
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return None
    return "a list of strings"


def optional_list_of_text(value):
    return None if value is None else list_of_text(value)


def results(value):
    if isinstance(value, (list, tuple, set, frozenset)) and all(v in RESULTS for v in value):
        return None
    return "a list made of %s" % ", ".join(repr(r) for r in RESULTS)


def optional_path(value):
    if value is None or isinstance(value, (str, os.PathLike)) and str(value):
        return None
    return "None or a directory path"


def list_of_regexes(value):
    problem = list_of_text(value)
    if problem:
        return "a list of regular expressions"
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            return "a list of regular expressions (%r is not one: %s)" % (pattern, exc)
    return None


def log_level(value):
    if logcapture.capture_level(value) is None:
        return "a logging level name such as 'INFO' or 'WARNING', or a number of at least 0"
    return None


def dotted_path(value):
    return None if isinstance(value, str) and "." in value else "a dotted path to a class"


#: The rule of every key of ``conf.DEFAULTS`` (tests check that none is missing).
RULES: dict[str, Callable] = {
    "BACKEND": dotted_path,
    "REPORTS_KEPT": int_at_least(1),
    "HISTORY_KEPT": int_at_least(1),
    "AUDIT_DAYS": number_at_least(0),
    "RESULTS_DAYS": number_at_least(0),
    "ADMIN_POLL_MS": int_at_least(100),
    "REPORT_TAIL_LINES": int_at_least(1),
    "STOP_GRACE_SECONDS": number_at_least(0),
    "DEFAULT_TIMEOUT": number_at_least(0, strict=True, optional=True),
    "MAX_LOG_BYTES": int_at_least(1),
    "LOG_BATCH_LINES": int_at_least(1),
    "LOG_BATCH_BYTES": int_at_least(1),
    "RUNS_PER_CHILD": int_at_least(1),
    "CHILD_MAX_MEMORY_MB": int_at_least(1),
    "LOG_FLUSH_SECONDS": number_at_least(0, strict=True),
    "LOG_LEVEL": log_level,
    "STOP_POLL_SECONDS": number_at_least(0, strict=True),
    "HEARTBEAT_SECONDS": number_at_least(0, strict=True),
    "HEARTBEAT_TIMEOUT": number_at_least(0, strict=True),
    "NODE_TIMEOUT": number_at_least(0),
    "CLOCK_TOLERANCE": number_at_least(0),
    "FENCE_MARGIN": number_at_least(0, optional=True),
    "RECOVERY_SECONDS": number_at_least(0),
    "OVERDUE_GRACE": number_at_least(0),
    "SPOOL_SWEEP_BATCH": int_at_least(1),
    "TAKEOVER_GRACE": number_at_least(0, optional=True),
    "TAKEOVER_BATCH": int_at_least(1),
    "QUEUES": lambda value: None if value is None else queue_names(value),
    "SERVE_QUEUES": queue_names,
    "WEB_ONLY": optional_boolean,
    "ALLOWED_COMMANDS": list_of_text,
    "DANGEROUS_COMMANDS": list_of_text,
    "ALLOWED_DANGEROUS_COMMANDS": list_of_text,
    "UNSAFE_COMMANDS": list_of_text,
    "ALLOW_UNSAFE_COMMANDS": boolean,
    "WORKING_DIR": optional_path,
    "FORK_SERVER": boolean,
    "FORK_SERVER_HUGE_PAGES": boolean,
    "NOTIFY_ON": results,
    "NOTIFY_RECOVERED": boolean,
    "NOTIFY_EMAIL_RECIPIENTS": optional_list_of_text,
    "NOTIFY_EMAIL_FROM": optional_text,
    "NOTIFY_WEBHOOK_URL": optional_url,
    "NOTIFY_SLACK_TOKEN": optional_text,
    "NOTIFY_SLACK_CHANNEL": optional_text,
    "NOTIFY_SLACK_BASE_URL": url,
    "NOTIFY_TIMEOUT": number_at_least(0, strict=True),
    "NOTIFY_SITE_URL": optional_url,
    "REDACT_SETTINGS": list_of_text,
    "REDACT_PATTERNS": list_of_regexes,
}


def _type_of_default(name: str) -> Callable:
    """Fallback rule for a key added to DEFAULTS without a rule: the default's type."""
    default = DEFAULTS[name]

    def rule(value):
        if (
            default is None
            or isinstance(value, type(default))
            and not (isinstance(value, bool) and not isinstance(default, bool))
        ):
            return None
        return "a value of type %s" % type(default).__name__

    return rule


def _configured(name: str) -> tuple[bool, object]:
    """Return (set in the project's settings?, value in force)."""
    full = PREFIX + name
    if hasattr(settings, full):
        return True, getattr(settings, full)
    return False, DEFAULTS[name]


def _setting_error(name: str, value, expected: str) -> checks.Error:
    return checks.Error(
        "%s%s is %r; it must be %s." % (PREFIX, name, value, expected),
        hint="Fix %s%s in your settings, or remove it to use the default (%r)."
        % (PREFIX, name, DEFAULTS[name]),
        obj=PREFIX + name,
        id="taskmanager.E001",
    )


# -- settings checks ------------------------------------------------------------------


@checks.register(TAG)
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check every ``TASKMANAGER_*`` value (E001), the backend (E002), unknown names (W001)."""
    messages = []
    values = {}
    for name in DEFAULTS:
        _set, value = _configured(name)
        values[name] = value
        problem = RULES.get(name, _type_of_default(name))(value)
        if problem:
            messages.append(_setting_error(name, value, problem))
    messages += _check_backend(values["BACKEND"])
    messages += _check_relations(values, {m.obj for m in messages})
    for full in dir(settings):
        if full.startswith(PREFIX) and full[len(PREFIX) :] not in DEFAULTS:
            close = difflib.get_close_matches(full[len(PREFIX) :], list(DEFAULTS), n=1)
            hint = (
                "Did you mean %s%s?" % (PREFIX, close[0])
                if close
                else "See the settings reference in the documentation for the valid names."
            )
            messages.append(
                checks.Warning(
                    "%s is not a setting of the task manager and has no effect." % full,
                    hint=hint,
                    obj=full,
                    id="taskmanager.W001",
                )
            )
    if values["ALLOW_UNSAFE_COMMANDS"] is True:
        messages.append(
            checks.Warning(
                "%sALLOW_UNSAFE_COMMANDS has no effect any more: dangerous commands stay blocked "
                "unless %sALLOWED_DANGEROUS_COMMANDS names them." % (PREFIX, PREFIX),
                hint="Remove it; name the commands tasks really need in %sALLOWED_COMMANDS and "
                "%sALLOWED_DANGEROUS_COMMANDS (see the security model in the documentation)."
                % (PREFIX, PREFIX),
                obj=PREFIX + "ALLOW_UNSAFE_COMMANDS",
                id="taskmanager.W015",
            )
        )
    working_dir = values["WORKING_DIR"]
    if working_dir is not None and not optional_path(working_dir) and not os.path.isdir(working_dir):
        messages.append(
            checks.Warning(
                "%sWORKING_DIR is %r, which is not a directory here: commands would fail to start."
                % (PREFIX, str(working_dir)),
                hint="Create the directory on every node that runs spoolers, or fix the setting.",
                obj=PREFIX + "WORKING_DIR",
                id="taskmanager.W002",
            )
        )
    return messages


def _check_backend(path) -> list[checks.CheckMessage]:
    if dotted_path(path):
        return []  # already reported by E001
    # Deferred: the backend contract is needed only when a backend is configured.
    from .spooler import BaseBackend

    try:
        backend = import_string(path)
    except ImportError as exc:
        problem = "cannot be imported (%s)" % exc
    else:
        if isinstance(backend, type) and issubclass(backend, BaseBackend):
            return []
        problem = "is not a subclass of taskmanager.spooler.BaseBackend"
    return [
        checks.Error(
            "%sBACKEND %r %s." % (PREFIX, path, problem),
            hint="Use 'taskmanager.spooler.uwsgi.UwsgiBackend' (the default) or the dotted path "
            "of your own BaseBackend subclass.",
            obj=PREFIX + "BACKEND",
            id="taskmanager.E002",
        )
    ]


def _check_relations(values: dict, invalid: set) -> list[checks.CheckMessage]:
    """Check values that only make sense together (W003, W009)."""
    messages = []

    def valid(*names):
        return not any(PREFIX + n in invalid for n in names)

    if valid("HEARTBEAT_SECONDS", "HEARTBEAT_TIMEOUT", "FENCE_MARGIN") and (
        fencing.holder_limit(values["HEARTBEAT_TIMEOUT"], values["FENCE_MARGIN"])
        < 2 * values["HEARTBEAT_SECONDS"]
    ):
        messages.append(
            checks.Warning(
                "%sHEARTBEAT_TIMEOUT (%s s) minus %sFENCE_MARGIN (%g s) is less than twice "
                "%sHEARTBEAT_SECONDS (%s s): supervisors would kill commands whose heartbeat is only "
                "late, and recovery take live runs for interrupted."
                % (
                    PREFIX,
                    values["HEARTBEAT_TIMEOUT"],
                    PREFIX,
                    fencing.margin(values["HEARTBEAT_TIMEOUT"], values["FENCE_MARGIN"]),
                    PREFIX,
                    values["HEARTBEAT_SECONDS"],
                ),
                hint="Keep HEARTBEAT_TIMEOUT at several heartbeats above the margin, e.g. 12 times "
                "HEARTBEAT_SECONDS, and FENCE_MARGIN a fraction of it.",
                obj=PREFIX + "HEARTBEAT_TIMEOUT",
                id="taskmanager.W009",
            )
        )
    if valid("NODE_TIMEOUT", "RECOVERY_SECONDS") and values["NODE_TIMEOUT"]:
        recovery = values["RECOVERY_SECONDS"]
        if not recovery or recovery * 2 > values["NODE_TIMEOUT"]:
            messages.append(
                checks.Warning(
                    "Spooler nodes record their heartbeat every %sRECOVERY_SECONDS (%s s), but the admin "
                    "reports a node as silent after %sNODE_TIMEOUT (%s s): live nodes would be "
                    "reported as down." % (PREFIX, recovery, PREFIX, values["NODE_TIMEOUT"]),
                    hint="Make NODE_TIMEOUT at least twice RECOVERY_SECONDS (and RECOVERY_SECONDS "
                    "not 0), or set NODE_TIMEOUT to 0 to turn the warnings off.",
                    obj=PREFIX + "NODE_TIMEOUT",
                    id="taskmanager.W003",
                )
            )
    if valid("QUEUES", "SERVE_QUEUES") and values["QUEUES"] is not None:
        known = set(values["QUEUES"]) | {"default"}
        unknown = sorted(set(values["SERVE_QUEUES"]) - known)
        if unknown:
            messages.append(
                checks.Warning(
                    "%sSERVE_QUEUES names queues that %sQUEUES does not list: %s; no task can be "
                    "pinned to them." % (PREFIX, PREFIX, ", ".join(unknown)),
                    hint="Add them to QUEUES, or fix the spelling in SERVE_QUEUES.",
                    obj=PREFIX + "SERVE_QUEUES",
                    id="taskmanager.W018",
                )
            )
    return messages


@checks.register(TAG)
def check_time_zone(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check that schedules can be computed in the project's time zone (E003, E004)."""

    messages = []
    if not settings.USE_TZ:
        messages.append(
            checks.Error(
                "USE_TZ is False: the task manager computes schedules with aware datetimes and "
                "cannot start or schedule tasks with naive ones.",
                hint="Set USE_TZ = True (the default since Django 5.0); TIME_ZONE stays the zone "
                "schedules follow.",
                obj="USE_TZ",
                id="taskmanager.E003",
            )
        )
    name = settings.TIME_ZONE
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, TypeError, ValueError) as exc:
        messages.append(
            checks.Error(
                "TIME_ZONE %r cannot be loaded (%s): daily and monthly schedules follow the wall "
                "clock of TIME_ZONE." % (name, exc.__class__.__name__),
                hint="Use an IANA zone name such as 'Europe/Rome' or 'UTC'; if the name is right, "
                "install the system tz database or the tzdata package.",
                obj="TIME_ZONE",
                id="taskmanager.E004",
            )
        )
    return messages


def _task_database() -> str:
    # Deferred: the settings checks run before any query; only the database checks use the ORM.
    from django.db import router

    from .models import Task

    return router.db_for_write(Task) or "default"


@checks.register(TAG)
def check_sqlite(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check the options of the SQLite database the tasks live in (W004-W006), without querying it.

    Web processes and several spooler processes write to the same file at
    the same time: without WAL readers block writers, without IMMEDIATE
    transactions a write inside a read transaction fails at once with
    "database is locked", and without a generous busy timeout a writer gives
    up while another one commits a batch of log lines.
    """
    alias = _task_database()
    config = settings.DATABASES.get(alias, {})
    if config.get("ENGINE") != "django.db.backends.sqlite3":
        return []
    options = config.get("OPTIONS") or {}
    messages = []
    init = str(options.get("init_command") or "").lower().replace(" ", "")
    if "journal_mode=wal" not in init:
        messages.append(
            checks.Warning(
                "The SQLite database %r is not set to WAL mode: page views wait while a task writes "
                "its log, and spoolers fail with 'database is locked'." % alias,
                hint='Add "init_command": "PRAGMA journal_mode=WAL;" to DATABASES[%r][\'OPTIONS\'] '
                "(if the file is already in WAL mode, which persists, add taskmanager.W004 to "
                "SILENCED_SYSTEM_CHECKS)." % alias,
                obj="DATABASES[%r]" % alias,
                id="taskmanager.W004",
            )
        )
    if str(options.get("transaction_mode") or "").upper() != "IMMEDIATE":
        messages.append(
            checks.Warning(
                "The SQLite database %r does not use IMMEDIATE transactions: concurrent web and "
                "spooler processes fail with 'database is locked' instead of waiting." % alias,
                hint='Add "transaction_mode": "IMMEDIATE" to DATABASES[%r][\'OPTIONS\'].' % alias,
                obj="DATABASES[%r]" % alias,
                id="taskmanager.W005",
            )
        )
    timeout = options.get("timeout")
    if not _is_number(timeout) or timeout < SQLITE_MIN_TIMEOUT:
        messages.append(
            checks.Warning(
                "The SQLite database %r has a busy timeout of %s seconds: a process gives up when "
                "another one holds the write lock for longer."
                % (alias, timeout if timeout is not None else "5 (the default)"),
                hint="Add \"timeout\": 20 (seconds) to DATABASES[%r]['OPTIONS']." % alias,
                obj="DATABASES[%r]" % alias,
                id="taskmanager.W006",
            )
        )
    return messages


@checks.register(TAG, checks.Tags.database)
def check_sqlite_journal(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """Ask an SQLite database file for its journal mode (W007); only when given databases."""
    if not databases:
        return []
    alias = _task_database()
    if alias not in databases:
        return []
    # Deferred: see _task_database.
    from django.db import connections

    connection = connections[alias]
    if connection.vendor != "sqlite":
        return []
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        mode = str(cursor.fetchone()[0]).lower()
    if mode == "wal" or connection.is_in_memory_db():
        return []
    return [
        checks.Warning(
            "The SQLite database %r is in journal mode %r, not WAL: page views wait while a task "
            "writes its log." % (alias, mode),
            hint='Add "init_command": "PRAGMA journal_mode=WAL;" to DATABASES[%r][\'OPTIONS\'], '
            "or run PRAGMA journal_mode=WAL once on the file." % alias,
            obj="DATABASES[%r]" % alias,
            id="taskmanager.W007",
        )
    ]


@checks.register(TAG, checks.Tags.database)
def check_blocked_commands(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """List the tasks whose command the settings block (W016); only when given databases.

    Their runs are refused when they happen (``taskmanager.policy``): the
    check says so before anybody presses Start.
    """
    if not databases or _task_database() not in databases:
        return []
    # Deferred: see _task_database.
    from django.db import DatabaseError

    from . import policy
    from .models import DjangoTaskResult, Task

    try:
        # Not the carrier tasks of django.tasks functions: their command never runs as a task
        # (policy.blocked says so), yet a spooler runs their function calls (djangotasks/run.py).
        rows = list(
            Task.objects.exclude(command__app_name=policy.SELF, command__name=DjangoTaskResult.CARRIER_COMMAND)
            .values_list("name", "command__app_name", "command__name")
        )
    except DatabaseError:  # tables not created yet (migrate runs the checks first)
        return []
    blocked = [(name, app, command) for name, app, command in rows if policy.blocked(app, command)]
    if not blocked:
        return []
    return [
        checks.Warning(
            "%d task(s) use a command the settings block, so their runs are refused: %s."
            % (len(blocked), ", ".join("%r (%s)" % (name, command) for name, _app, command in blocked[:20])),
            hint="Change those tasks to another command, delete them, or, if the project really needs the "
            "command, name it in %sALLOWED_DANGEROUS_COMMANDS." % PREFIX,
            obj="taskmanager.Task",
            id="taskmanager.W016",
        )
    ]


def process_messages() -> list[checks.CheckMessage]:
    """Problems of the uWSGI process itself (not of its options): W014 (root), W017 (clock), W019."""
    return _root_messages() + clock_messages() + identity_messages()


def identity_messages() -> list[checks.CheckMessage]:
    """W019: live spooler nodes share this machine's host name but not its boot or PID namespace.

    From the nodes' heartbeats (``SpoolerHeartbeat.objects.identity_clashes``);
    nothing when the database cannot be reached.
    """
    # Deferred: the ORM, only when the check runs inside a started process.
    from .models import SpoolerHeartbeat

    host, me = socket.gethostname(), processes.node_identity()
    try:
        rows = SpoolerHeartbeat.objects.live().filter(node__startswith=host + ":")
        nodes = sorted(
            node for node, identity in rows.values_list("node", "identity") if identity not in ("", me)
        )
        clashed = [c for c in SpoolerHeartbeat.objects.identity_clashes() if c["host"] == host]
    except Exception:  # noqa: BLE001 - a check must not fail a process's start
        return []
    nodes = sorted(set(nodes).union(*(c["nodes"] for c in clashed)))
    if not nodes:
        return []
    return [
        checks.Warning(
            "Spooler nodes %s share this machine's host name %s but run on other machines or containers "
            "(another boot or PID namespace)." % (", ".join(nodes), host),
            hint="Give every machine and container a host name of its own: runs on nodes that share "
            "one are judged by their heartbeat only, and the admin cannot tell the nodes apart.",
            obj="uWSGI",
            id="taskmanager.W019",
        )
    ]


def clock_messages() -> list[checks.CheckMessage]:
    """W017: this machine's clock differs from the database server's by more than CLOCK_TOLERANCE.

    Measured with one query (``taskmanager.dbclock``); nothing when the
    database cannot be reached (the run path reports that) or the tolerance is 0.
    """
    # Deferred: the ORM, only when the check runs inside a started process.
    from . import dbclock

    tolerance = app_settings.CLOCK_TOLERANCE
    try:
        offset = dbclock.measure() if tolerance else 0.0
    except Exception:  # noqa: BLE001 - a check must not fail a process's start; the run path reports it
        return []
    if abs(offset) <= tolerance:
        return []
    return [
        checks.Warning(
            "This machine's clock is %.1f s %s the database server's (more than %sCLOCK_TOLERANCE, %s s)."
            % (abs(offset), "ahead of" if offset < 0 else "behind", PREFIX, tolerance),
            hint="The task manager compares every time on the database's clock, and translates the "
            "'at' of spool entries by the offset; synchronise the clocks anyway (NTP, chrony).",
            obj="uWSGI",
            id="taskmanager.W017",
        )
    ]


def _root_messages() -> list[checks.CheckMessage]:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return [
            checks.Warning(
                "uWSGI runs as root: every task's command runs as root too, with the whole machine "
                "at its mercy.",
                hint="Run uWSGI as an unprivileged user (its 'uid' and 'gid' options, or the "
                "service manager's User=).",
                obj="uWSGI",
                id="taskmanager.W014",
            )
        ]
    return []


@checks.register(TAG)
def check_notifications(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check that the configured notification channels can send (E005, W008)."""

    messages = []
    token, channel = app_settings.NOTIFY_SLACK_TOKEN, app_settings.NOTIFY_SLACK_CHANNEL
    if token or channel:
        if not (token and channel):
            messages.append(
                checks.Warning(
                    "Slack notifications need both %sNOTIFY_SLACK_TOKEN and %sNOTIFY_SLACK_CHANNEL; "
                    "only one is set, so nothing is sent to Slack." % (PREFIX, PREFIX),
                    hint="Set both, or neither.",
                    obj=PREFIX + "NOTIFY_SLACK_CHANNEL",
                    id="taskmanager.W008",
                )
            )
        elif importlib.util.find_spec("slack_sdk") is None:
            messages.append(
                checks.Error(
                    "Slack notifications are configured but the slack_sdk package is not installed.",
                    hint="Install the task manager with its 'slack' extra: "
                    "pip install 'django-spooler-taskmanager[slack]'.",
                    obj=PREFIX + "NOTIFY_SLACK_TOKEN",
                    id="taskmanager.E005",
                )
            )
    return messages


# -- uWSGI checks -----------------------------------------------------------------


def _opt_value(opt: Mapping, name: str):
    """Return an option's value as str (flags as True; last value if repeated) or None."""
    return uwsgi_runtime.option(name, opt)


def _opt_int(opt: Mapping, name: str) -> int | None | str:
    """Return an option as int, None when absent, or the raw text when not an integer."""
    value = _opt_value(opt, name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _importable(target: str) -> bool:
    """Whether a ``spooler-import`` value names something uWSGI can import."""
    if "/" in target or target.endswith(".py"):
        return os.path.isfile(target)
    try:
        return importlib.util.find_spec(target) is not None
    except (ImportError, ValueError):
        return False


def uwsgi_messages(opt: Mapping | None = None) -> list[checks.CheckMessage]:
    """Return the problems of a uWSGI configuration (E010-E019, W010-W019).

    ``opt`` is ``uwsgi.opt`` (str keys; bytes values, True for flags, the
    last value of a repeated option); by default this process's, and [] when
    not running under uWSGI.
    """
    if opt is None:
        try:  # only importable inside uWSGI
            import uwsgi
        except ImportError:
            return []
        opt = uwsgi.opt
    messages = []
    obj = "uWSGI"
    spooler = _opt_value(opt, "spooler")
    external = _opt_value(opt, "spooler-external")
    if not _opt_value(opt, "master"):
        messages.append(
            checks.Error(
                "uWSGI runs without its master process: spooler processes and the task manager's "
                "spool handler need it.",
                hint="Add 'master = true' to the uWSGI configuration.",
                obj=obj,
                id="taskmanager.E010",
            )
        )
    if not spooler and not external and app_settings.WEB_ONLY is False:
        messages.append(
            checks.Error(
                "uWSGI has no spooler configured: tasks cannot be started from this instance.",
                hint="Add 'spooler = /path/to/spool/dir' (and spooler-processes = 2 or more), or, on "
                "a web-only node, 'spooler-external' naming the spool directory of a spooler node.",
                obj=obj,
                id="taskmanager.E011",
            )
        )
    if spooler:
        frequency = _opt_int(opt, "spooler-frequency")
        if frequency is None:
            messages.append(
                checks.Warning(
                    "spooler-frequency is not set, so uWSGI scans the spool directory every %d s: "
                    "a scheduled run, or one started while every spooler process is busy, starts up "
                    "to %d s late." % (UWSGI_DEFAULT_SPOOLER_FREQUENCY, UWSGI_DEFAULT_SPOOLER_FREQUENCY),
                    hint="Set 'spooler-frequency = 1' (1 to 5 seconds).",
                    obj=obj,
                    id="taskmanager.W010",
                )
            )
        elif isinstance(frequency, str) or frequency < 1:
            messages.append(
                checks.Error(
                    "spooler-frequency is %r: below 1 second the spooler processes scan the spool "
                    "directory without pause, at 100%% CPU." % frequency,
                    hint="Set 'spooler-frequency = 1' (1 to 5 seconds).",
                    obj=obj,
                    id="taskmanager.E012",
                )
            )
        processes = _opt_int(opt, "spooler-processes")
        if processes is None or isinstance(processes, int) and processes < 2:
            messages.append(
                checks.Warning(
                    "uWSGI runs a single spooler process: while it runs a long task, every other "
                    "task waits for it to end.",
                    hint="Set 'spooler-processes = 2' or more.",
                    obj=obj,
                    id="taskmanager.W011",
                )
            )
        if _opt_value(opt, "spooler-harakiri"):
            messages.append(
                checks.Warning(
                    "spooler-harakiri is set: uWSGI kills a spooler process whose task runs longer, "
                    "and then runs the same spool file again, once a second, for ever.",
                    hint="Remove spooler-harakiri and give tasks a timeout instead (the task's "
                    "timeout field or TASKMANAGER_DEFAULT_TIMEOUT).",
                    obj=obj,
                    id="taskmanager.W012",
                )
            )
        lazy = _opt_value(opt, "lazy-apps") or _opt_value(opt, "lazy")
        target = _opt_value(opt, "spooler-import")
        if lazy and not target:
            messages.append(
                checks.Error(
                    "uWSGI loads the application lazily (lazy-apps) and has no spooler-import: the "
                    "spooler processes never load Django, so tasks are never run.",
                    hint="Add 'spooler-import = yourproject.wsgi' (a module that sets Django up), "
                    "or remove lazy-apps.",
                    obj=obj,
                    id="taskmanager.E013",
                )
            )
        elif lazy and not _importable(target):
            messages.append(
                checks.Error(
                    "spooler-import names %r, which cannot be imported here: the spooler processes "
                    "never load Django, so tasks are never run." % target,
                    hint="Name a module that sets Django up, e.g. 'yourproject.wsgi' (check "
                    "pythonpath and chdir).",
                    obj=obj,
                    id="taskmanager.E014",
                )
            )
    directory = spooler or external
    if directory:
        path = os.path.abspath(directory)
        if not os.path.isdir(path):
            messages.append(
                checks.Error(
                    "The spool directory %s does not exist: no task can be spooled." % path,
                    hint="Create it (uWSGI only creates it at start) and restart uWSGI.",
                    obj=obj,
                    id="taskmanager.E015",
                )
            )
        elif not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            messages.append(
                checks.Error(
                    "The spool directory %s is not writable by this process (uid %d): no task can "
                    "be spooled." % (path, os.geteuid()),
                    hint="Give the user uWSGI runs as (its 'uid' option) write access to the directory.",
                    obj=obj,
                    id="taskmanager.E016",
                )
            )
    if not _opt_value(opt, "die-on-term"):
        messages.append(
            checks.Warning(
                "die-on-term is not set: in uWSGI 2.0, SIGTERM (systemd, docker stop) reloads the "
                "instance instead of stopping it, killing running tasks and starting them again.",
                hint="Add 'die-on-term = true'.",
                obj=obj,
                id="taskmanager.W013",
            )
        )
    return messages


@checks.register(TAG)
def check_uwsgi(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The uWSGI checks, when ``manage.py check`` runs inside uWSGI (e.g. as a task)."""
    try:
        import uwsgi  # noqa: F401 - only present inside uWSGI
    except ImportError:
        return []
    return uwsgi_messages() + process_messages()


def log_uwsgi_checks(where: str, opt: Mapping | None = None) -> list[checks.CheckMessage]:
    """Run the uWSGI checks and log each problem; return the messages.

    ``where`` names the process in the log lines, e.g. ``"spooler pid 12"``.
    Errors are logged at ERROR, warnings at WARNING, with their id, so a
    line reads ``taskmanager.W013 (worker 1): die-on-term is not set: ...``.
    Never raises: a check that fails to run is logged instead.
    """
    try:
        messages = uwsgi_messages(opt) + (process_messages() if opt is None else [])
    except Exception:  # noqa: BLE001 - a check must never stop a process from starting
        logger.exception("taskmanager: the uWSGI checks failed to run (%s)", where)
        return []
    if not _log_problems(messages, where):
        # Worker 1's summary line says it for the instance; this, for a spooler that loaded Django.
        logger.debug("taskmanager: the uWSGI checks found no problem (%s).", where)
    return messages


def _log_problems(messages: list[checks.CheckMessage], where: str) -> int:
    """Log each problem not silenced, errors at ERROR, warnings at WARNING; return how many."""
    logged = 0
    for message in messages:
        if message.is_silenced():
            continue
        level = logging.ERROR if message.is_serious() else logging.WARNING
        logger.log(level, "%s (%s): %s HINT: %s", message.id, where, message.msg, message.hint)
        logged += 1
    return logged


def log_start_checks(where: str) -> str:
    """Run every check of the app that needs no database query, log each problem, write a summary.

    Django runs no system check inside uWSGI: web worker 1 runs them when
    it starts (the uWSGI checks, the settings, the time zone...), logs each
    problem as :func:`log_uwsgi_checks` does, and writes one line saying
    what they found straight to the uWSGI log (:func:`write_to_uwsgi_log`),
    so that it shows whatever the project's ``LOGGING``. Return that line.
    Never raises.
    """
    try:
        messages = checks.run_checks(tags=[TAG])
    except Exception:  # noqa: BLE001 - a check must never stop a process from starting
        logger.exception("taskmanager: the system checks failed to run (%s)", where)
        line = (
            "taskmanager: system checks failed to run at uWSGI start (%s); see the traceback above." % where
        )
    else:
        _log_problems(messages, where)
        line = start_summary(messages, where)
    write_to_uwsgi_log(line)
    web_only = _web_only_line()
    if web_only:
        write_to_uwsgi_log(web_only)
        line += "\n" + web_only
    return line


def _web_only_line() -> str | None:
    """The line saying that this instance runs nothing itself (no spooler), or None.

    Legitimate on a web-only node of several machines, so not a check; but a
    first deployment that forgot the ``spooler`` option would otherwise see no
    word of it in the log while every run waits.
    """
    try:
        if not get_backend().web_only():
            return None
    except Exception:  # noqa: BLE001 - a log line must never stop a process from starting
        return None
    return (
        "taskmanager: this uWSGI instance has no spooler (web-only, %sWEB_ONLY): the runs and "
        "django.tasks calls it starts wait for a spooler node; add 'spooler = /path/to/spool/dir' "
        "to run them here." % PREFIX
    )


def start_summary(messages: list[checks.CheckMessage], where: str) -> str:
    """Return the one line saying what the checks found at uWSGI start, e.g.

    ``taskmanager: system checks ran at uWSGI start (worker 1): no problem found.``
    or ``... (worker 1): 1 error, 2 warnings: taskmanager.E011, taskmanager.W010,
    taskmanager.W013 (each logged with its hint).``, silenced ones counted at the end
    (``no problem found (1 silenced).``).
    """
    shown = sorted({(not m.is_serious(), m.id) for m in messages if not m.is_silenced()})
    silenced = sum(1 for m in messages if m.is_silenced())
    errors = sum(1 for warning, _id in shown if not warning)
    if shown:
        counts = []
        if errors:
            counts.append("%d error%s" % (errors, "" if errors == 1 else "s"))
        if len(shown) > errors:
            warnings = len(shown) - errors
            counts.append("%d warning%s" % (warnings, "" if warnings == 1 else "s"))
        found = "%s: %s (each logged with its hint)" % (", ".join(counts), ", ".join(i for _w, i in shown))
    else:
        found = "no problem found"
    if silenced:
        found += " (%d silenced)" % silenced  # as manage.py check counts them
    return "taskmanager: system checks ran at uWSGI start (%s): %s." % (where, found)


def write_to_uwsgi_log(line: str) -> None:
    """Write ``line`` to the uWSGI log (its ``logto`` file or the terminal), bypassing ``logging``."""
    log = getattr(uwsgi_runtime.uwsgi, "log", None)
    try:
        if log is not None:
            log(line)
        else:  # pragma: no cover - outside uWSGI: its log is standard error
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    except Exception:  # noqa: BLE001, S110 - a log line must never stop a process from starting
        pass


def install_uwsgi_checks() -> None:
    """Arrange for the checks to run in web worker 1 (all, with the summary line) and each spooler.

    Called when the app is ready. In the uWSGI master (the default, non-lazy
    loading) a ``postfork`` hook runs them after each fork; in a process
    that is already a worker or a spooler (``lazy-apps``, ``spooler-import``)
    they run at once. Outside uWSGI, do nothing.
    """
    try:  # only importable inside uWSGI
        import uwsgi
    except ImportError:
        return
    if uwsgi.opt.get("master") and uwsgi.masterpid() == os.getpid():
        import uwsgidecorators  # only importable inside uWSGI

        @uwsgidecorators.postfork
        def taskmanager_uwsgi_checks():
            _log_in_this_process(uwsgi)

    else:
        _log_in_this_process(uwsgi)


def _log_in_this_process(uwsgi) -> None:
    # Deferred: the database layer, only inside a started uWSGI process.
    from django.db import connections

    try:
        if uwsgi.i_am_the_spooler():
            log_uwsgi_checks("spooler pid %d" % os.getpid())
        elif uwsgi.worker_id() <= 1:
            log_start_checks("worker %d" % uwsgi.worker_id())
    finally:
        # The clock and identity checks (W017, W019) query the database outside
        # any request: nothing would close that connection until a request
        # happened to be served on this thread (PostgreSQL: an idle session;
        # SQLite: a file that never gets let go of, its WAL never reset).
        connections.close_all()

"""Count durable commits and SQL statements per process, for the tests and the benchmarks.

A *durable commit* is what makes the database write to disk and wait for it:

* outside a transaction (autocommit), every INSERT / UPDATE / DELETE commits
  on its own;
* an ``atomic()`` block commits once when it ends, if it wrote anything
  (a block that only read commits nothing durable).

Each process keeps its counters in memory and overwrites them in a small file
``$TM_SQL_COUNT_DIR/counts/<role>-<pid>`` after each change (one ``pwrite`` of 16
bytes: a few microseconds, against ~0.7 ms for the commit it counts). The role
is ``spooler`` (a spooler process and the command children it forks),
``worker`` (a uWSGI web worker) or ``other``. ``read_counts()`` sums them.

Beside the process's totals, the statements and commits issued *inside a
run* are counted apart (``run_commits``, ``run_statements``): those whose
call stack goes through ``taskmanager.runner.execute`` (the spool entry's
claim, fork, supervision and end). The spooler's timer (heartbeat, the
periodic recovery pass) is in the totals only: issue 17's targets are about
the run path, and its timer's cost depends on the clock, not on the runs.

With ``TM_SQL_TRACE`` set, each counted commit also appends the
statement(s) it committed to ``$TM_SQL_COUNT_DIR/commits-<role>.log``, and
each statement of the run path goes to ``$TM_SQL_COUNT_DIR/run-<role>.log``
(:func:`read_run_trace`): slower, for finding out what the run path issues,
not for timing.

:class:`CountSqlMiddleware` counts the same per request, for a test that asks
(the header ``X-TM-Count-SQL``), in every server the tests start.

A process counts once :func:`install` is connected to ``connection_created``:
the bench app does it (``bench/benchapp/apps.py``), and so does the tests' app
in a uWSGI node started with ``TM_SQL_COUNT_DIR`` in its environment
(``tests/testapp/apps.py``).
"""

import os
import re
import struct
import sys
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")
_FORMAT = "<QQQQ"
_FIELDS = ("commits", "statements", "run_commits", "run_statements")
# The run path: taskmanager.runner.execute (a frame of this code is on the stack).
_RUN_FILE = os.path.join("taskmanager", "runner", "__init__.py")


class _Counts:
    pid = None
    fd = None
    role = "other"
    commits = 0
    statements = 0
    run_commits = 0
    run_statements = 0
    trace_base = None  # the directory of the trace files, when TM_SQL_TRACE is set


_counts = _Counts()


#: The environment variable naming the directory of the counter files.
DIR_ENV = "TM_SQL_COUNT_DIR"
#: Set (to anything) to trace the statements as well (see the module's docstring).
TRACE_ENV = "TM_SQL_TRACE"


def _base() -> Path | None:
    value = os.environ.get(DIR_ENV)
    return Path(value) if value else None


def _role() -> str:
    try:
        import uwsgi
    except ImportError:
        return "other"
    try:
        if uwsgi.i_am_the_spooler():
            return "spooler"
        if uwsgi.worker_id() > 0:
            return "worker"
    except Exception:  # noqa: BLE001 - the master or an odd process: not counted apart
        pass
    return "other"


def _save() -> None:
    pid = os.getpid()
    if _counts.pid != pid:
        # First change in this process (or in a forked child): start from zero.
        _counts.pid = pid
        _counts.commits = _counts.statements = _counts.run_commits = _counts.run_statements = 0
        _counts.role = _role()
        _counts.fd = None
        base = _base()
        # Read once per process: the environment of a counted process does not
        # change, and reading it at each statement cost the run path more than
        # the counting itself (the benchmarks' CPU per run includes it).
        _counts.trace_base = base if base is not None and os.environ.get(TRACE_ENV) else None
        if base is not None:
            (base / "counts").mkdir(parents=True, exist_ok=True)
            path = base / "counts" / ("%s-%d" % (_counts.role, pid))
            _counts.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)


def _write() -> None:
    if _counts.fd is not None:
        os.pwrite(_counts.fd, struct.pack(_FORMAT, *(getattr(_counts, name) for name in _FIELDS)), 0)


def _in_run() -> bool:
    """Whether the caller is inside ``taskmanager.runner.execute`` (a walk up the stack: a few us)."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "execute" and code.co_filename.endswith(_RUN_FILE):
            return True
        frame = frame.f_back
    return False


def _trace(sql: str, name: str = "commits") -> None:
    base = _counts.trace_base  # set by _save(), called first
    if base is None:
        return
    with open(base / ("%s-%s.log" % (name, _counts.role)), "a") as fh:
        fh.write("%d %s\n" % (os.getpid(), " ".join(sql.split())[:160]))


def _is_write(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in _WRITES


def _execute_wrapper(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    _save()
    in_run = _in_run()
    _counts.statements += 1
    _counts.run_statements += in_run
    if in_run:
        _trace(sql, "run")
    connection = context["connection"]
    if _is_write(sql):
        if connection.in_atomic_block or not connection.get_autocommit():
            connection.bench_pending = getattr(connection, "bench_pending", []) + [sql]
        else:
            _counts.commits += 1
            _counts.run_commits += in_run
            _trace(sql)
            if in_run:
                _trace("(commit)", "run")
    _write()
    return result


def install(sender=None, connection=None, **kwargs) -> None:
    """Count the commits of ``connection`` (a receiver of ``connection_created``)."""
    if connection is None or getattr(connection, "bench_counted", False):
        return
    connection.bench_counted = True
    connection.bench_pending = []
    connection.execute_wrappers.append(_execute_wrapper)
    commit, rollback = connection._commit, connection._rollback

    def counted_commit():
        result = commit()
        if connection.bench_pending:
            _save()
            _counts.commits += 1
            in_run = _in_run()
            _counts.run_commits += in_run
            _trace(" ; ".join(connection.bench_pending))
            if in_run:
                _trace("(commit)", "run")
            connection.bench_pending = []
            _write()
        return result

    def counted_rollback():
        connection.bench_pending = []
        return rollback()

    connection._commit = counted_commit
    connection._rollback = counted_rollback


def read_counts(base: Path) -> dict:
    """Return ``{role: {"commits": n, "statements": n, "run_commits": n, "run_statements": n}}``.

    Summed over the files under ``base``.
    """
    totals: dict = {}
    folder = Path(base) / "counts"
    if not folder.is_dir():
        return totals
    for path in folder.iterdir():
        role = path.name.rsplit("-", 1)[0]
        data = path.read_bytes()[: struct.calcsize(_FORMAT)]
        if len(data) < struct.calcsize(_FORMAT):
            continue
        entry = totals.setdefault(role, dict.fromkeys(_FIELDS, 0))
        for name, value in zip(_FIELDS, struct.unpack(_FORMAT, data), strict=True):
            entry[name] += value
    return totals


def read_run_trace(base: Path, role: str = "spooler") -> list[str]:
    """Return the traced statements of the run path (with ``TM_SQL_TRACE``), "(commit)" after each commit.

    Each line is "<pid> <statement>", oldest first.
    """
    path = Path(base) / ("run-%s.log" % role)
    return path.read_text().splitlines() if path.exists() else []


def counting_node(directory: Path) -> dict:
    """The ``uwsgi_node`` keywords of a node that counts (and traces) its SQL in ``directory``.

    Its runner's timing logger also writes one line per run to
    ``directory/timing.log`` when the run is over (:func:`runs_logged`).
    """
    logging = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "console": {"class": "logging.StreamHandler"},
            "timing": {"class": "logging.FileHandler", "filename": str(Path(directory) / "timing.log")},
        },
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            "taskmanager.runner.timing": {"handlers": ["timing"], "level": "DEBUG", "propagate": False}
        },
    }
    return {"env": {DIR_ENV: str(directory), TRACE_ENV: "1"}, "settings": {"LOGGING": logging}}


def runs_logged(directory: Path) -> int:
    """Return how many runs a :func:`counting_node` has finished (its runner returned)."""
    path = Path(directory) / "timing.log"
    return path.read_text().count("\n") if path.exists() else 0


class CountSqlMiddleware:
    """Tell a request sent with the header ``X-TM-Count-SQL`` what it did to the database.

    The same counts as the module's, per request: the answer carries
    ``X-TM-Commits``, its durable commits, and ``X-TM-SQL``:
    its statements, each as its first word and table (``SELECT
    taskmanager_task``), ``|``-separated, ``BEGIN`` included. First in
    ``MIDDLEWARE`` (``tests/settings.py``): the session and the user are
    counted too, and what the view does on commit.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_X_TM_COUNT_SQL" not in request.META:
            return self.get_response(request)
        connection = connections[DEFAULT_DB_ALIAS]
        seen = {"sql": [], "commits": 0, "pending": False}

        def count(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            seen["sql"].append(_statement(sql))
            if _is_write(sql):
                if connection.in_atomic_block or not connection.get_autocommit():
                    seen["pending"] = True
                else:
                    seen["commits"] += 1
            return result

        def counted_commit():
            type(connection).commit(connection)
            if seen["pending"]:
                seen["commits"] += 1
                seen["pending"] = False

        connection.commit = counted_commit  # Atomic commits through connection.commit()
        try:
            with connection.execute_wrapper(count):
                response = self.get_response(request)
        finally:
            del connection.commit
        response["X-TM-Commits"] = str(seen["commits"])
        response["X-TM-SQL"] = "|".join(seen["sql"])
        return response


def _statement(sql: str) -> str:
    """``"VERB table"`` of a statement (the first quoted name after the verb), or the verb alone."""
    verb = sql.split(None, 1)[0].upper() if sql.strip() else ""
    table = re.search(r'[`"](\w+)[`"]', sql)
    return "%s %s" % (verb, table.group(1)) if table and verb != "BEGIN" else verb

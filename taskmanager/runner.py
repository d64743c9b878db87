"""Run one task: claim it, supervise its command in a forked child, store the log.

``execute()`` is what a spooler calls for a spool entry. The steps:

1. **Claim**: one conditional UPDATE of the task, checked by its row count,
   turns it STARTED only if the entry's token is still the task's current
   one; the Report row is created in the same transaction. A stale token
   (the task was stopped, edited or deleted) consumes the entry silently.
   A periodic task's next run is spooled right after the claim, so a
   supervisor that dies mid-run does not break the chain.
2. **Supervise**: the command runs through ``call_command`` in a forked
   child with its own process group, killed by Linux if the supervisor dies
   (PDEATHSIG); the supervisor reads its output (see
   :mod:`taskmanager.logcapture`), writes the log in batches with a
   heartbeat, polls the database for a stop request (or its report being
   deleted or closed by recovery), enforces the timeout (SIGTERM to the
   group, SIGKILL after the grace period), survives database errors, and
   when the child has exited kills what the run left behind (the process
   group, and in a spooler the orphans re-parented to it as a subreaper).
3. **Finish**: the report gets its result and end reason, the task its last
   result and new status, in one transaction (retried while the database is
   unreachable); then old reports are pruned.

Recovery after a crash (:mod:`taskmanager.recovery`) relies on what is
recorded here: host, supervisor pid and start time, child pid (= process
group) and start time, heartbeat, and the ``TASKMANAGER_RUN`` marker in the
environment of the run's processes. See ``docs/lifecycle.rst``.
"""

import json
import logging
import os
import select
import selectors
import signal
import socket
import sys
import time
import traceback
from datetime import UTC, datetime

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.models import Exists, F
from django.utils import timezone

from . import arguments, history, logcapture, logstore, policy, processes, progress, schedule, uwsgi_runtime
from .conf import app_settings
from .models import Report, Task, new_token
from .retention import prune_reports, prune_small_reports
from .spooler import get_backend

logger = logging.getLogger("taskmanager.runner")
# Phase times of each run (perf_counter marks) at DEBUG, for bench/; off by
# default, and the marks themselves cost well under a microsecond each.
timing_logger = logging.getLogger("taskmanager.runner.timing")

# The child's outcome travels on the record pipe under this stream name.
_OUTCOME = "_outcome"
_RESET_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGPIPE,
    signal.SIGSEGV,
    signal.SIGFPE,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGTSTP,
    signal.SIGXFSZ,
)
# Exit code of a child whose command raised (as sysexits' EX_SOFTWARE).
_EXIT_EXCEPTION = 70
# Selector key data of the child's pidfd (readable once the child has exited).
_EXITED = object()
# Attempts at writing a run's end before giving up (the DB may be restarting);
# the pauses between them, in seconds.
_FINISH_PAUSES = (0.5, 1.0, 2.0, 4.0)
# Seconds to wait before writing to the database again after an error.
_DB_RETRY_SECONDS = 1.0

# The report this process supervises right now, if any. Recovery reads it: a
# running report whose supervisor is this very process, while this process
# supervises nothing (or another run), was orphaned.
_current_report_id: int | None = None


def current_report_id() -> int | None:
    """Return the pk of the report this process is supervising now, or None."""
    return _current_report_id


def run_marker(report: Report) -> str:
    """Return the report's ``TASKMANAGER_RUN`` marker (:meth:`Report.run_marker`)."""
    return report.run_marker()


def execute(task_id: int, token: str, trigger: str) -> Report | None:
    """Run the task for one spool entry, if its token is still current.

    Return the run's Report, or None when the entry was stale and consumed.
    The process's database connections are kept from one run to the next,
    but those that are broken or obsolete are closed before and after (see
    :func:`drop_broken_connections`; the spooler never closes them itself).
    """
    entered, entered_wall = time.perf_counter(), time.time()
    drop_broken_connections()
    try:
        try:
            run = claim(task_id, token, trigger, prefork=True)
        except (OperationalError, InterfaceError):
            # A kept connection the server dropped meanwhile (DB restart,
            # pg_terminate_backend, an idle timeout) fails on first use:
            # reconnect and claim again. The claim is one transaction, and a
            # child forked for it was killed, so a failed attempt left nothing.
            logger.warning("Database connection lost before claiming task %s; reconnecting.", task_id)
            connections.close_all()
            run = claim(task_id, token, trigger, prefork=True)
        if run is None:
            return None
        task, report = run
        supervisor = Supervisor(task, report)
        supervisor.run()
        if timing_logger.isEnabledFor(logging.DEBUG):
            _log_timing(report, entered, entered_wall, supervisor.marks)
        return report
    finally:
        drop_broken_connections()


def drop_broken_connections() -> None:
    """Close this thread's database connections that are broken or obsolete; keep the others.

    A spooler process lives long, like a web worker with persistent
    connections, and opening and closing a connection for every run costs
    more than the run's own queries (on SQLite the last connection to close
    checkpoints the WAL file and syncs it to disk). So a connection is kept
    across runs, whatever ``CONN_MAX_AGE`` says when it is 0 (Django's
    default, meant for requests), and closed, as Django does between
    requests, when an error occurred on it and it no longer works, when
    autocommit was left changed, or when it is older than a positive
    ``CONN_MAX_AGE``; with ``CONN_HEALTH_CHECKS`` it is checked at its first
    use in the next run. Else one the server dropped while it was idle fails
    the next claim, which reconnects and retries (:func:`execute`).
    Other code of the spooler (recovery, heartbeat) still calls
    ``close_old_connections()``, which applies ``CONN_MAX_AGE`` as it is.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue  # a caller's transaction (the immediate backend) is not ours to end
        # With CONN_HEALTH_CHECKS, Django checks the connection at its first
        # use after this, as at the start of a request.
        conn.health_check_done = False
        if conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
        elif conn.settings_dict["CONN_MAX_AGE"] and conn.close_at is not None:
            if time.monotonic() >= conn.close_at:
                conn.close()


def _log_timing(report: Report, entered: float, entered_wall: float, marks: dict) -> None:
    """Log the run's phase marks as JSON: milliseconds since the spool entry was handled."""
    committed = getattr(report, "claim_committed", None)
    if committed is not None:
        marks["claim_committed"] = committed
    timing_logger.debug(
        "%s",
        json.dumps(
            {
                "task": report.task_id,
                "report": report.pk,
                "entered": entered_wall,
                "ms": {name: round((at - entered) * 1000, 3) for name, at in marks.items()},
            }
        ),
    )


def local_tz():
    """The zone schedules are computed in: the project's TIME_ZONE (see schedule.project_tz)."""
    return schedule.project_tz()


def _next_run_after(task: Task, now: datetime) -> datetime | None:
    """The periodic task's next slot after this one (None for a one-shot task).

    The grid is the anchor's (``scheduling``), never the time this run
    started: a late run does not move the later ones, and missed slots are
    coalesced into this run. A schedule that cannot be computed (edited
    behind the form's back, or past the year 9999) ends the chain instead of
    failing the claim, which would leave the task pending for ever.
    """
    try:
        if not (task.is_periodic and task.scheduling):
            return None
        return schedule.next_slot(
            task.scheduling,
            task.repetition_period,
            task.repetition_rate,
            max(now, task.next_datetime or now),
            local_tz(),
        )
    except schedule.ScheduleError as exc:
        logger.error("Task %s: no next run (%s); this run is its last.", task.pk, exc)
        return None


def _respool(task_id: int, token: str, trigger: str, at: datetime | None) -> str:
    backend = get_backend()
    path = backend.spool(task_id, token, trigger, at)
    # Recovery finds a task's entry by node and path: keep both current.
    Task.objects.filter(pk=task_id, run_token=token).update(spooler_id=path, spooler_node=backend.node())
    return path


def claim(task_id: int, token: str, trigger: str, prefork: bool = False):
    """Claim the run for (task_id, token): return (task, report) or None.

    With ``prefork`` the command's child process is forked before the claim
    (see :class:`Child`): it prepares itself while the claim commits, the
    report row is inserted with its pid, command line and supervisor in the
    same transaction as the claim (one durable commit), and it runs the
    command once released right after that commit. A lost claim kills it
    before it ran anything of the command. Without ``prefork``, the
    :class:`Supervisor` forks the child when it runs.
    """
    now = timezone.now()
    task = Task.objects.select_related("command", "started_by").filter(pk=task_id).first()
    if task is None:
        logger.info("Task %s no longer exists: spool entry consumed without running.", task_id)
        return None
    if trigger == Report.Trigger.RUN_NOW:
        if not token or token != task.run_now_token:
            logger.info("Stale 'run now' entry for task %s consumed.", task_id)
            return None
        claimable = Task.objects.filter(
            pk=task.pk,
            run_now_token=token,
            status__in=[Task.Status.IDLE, *Task.PENDING],
        )
        # resume_status first: MySQL/MariaDB evaluate SET assignments left to
        # right, so after "status = STARTED" F("status") would read STARTED.
        changes = {"resume_status": F("status"), "status": Task.Status.STARTED, "run_now_token": ""}
        next_token, next_at = "", None
    else:
        if not token or token != task.run_token:
            logger.info("Stale spool entry for task %s consumed without running.", task_id)
            return None
        if task.status == Task.Status.STARTED:
            _skip_slot(task, token, now)
            return None
        if task.next_datetime and now < task.next_datetime:
            # Never start before the time stored in the DB (uWSGI's 'at' has
            # whole-second resolution): put the entry back for later.
            _respool(task.pk, token, trigger, task.next_datetime)
            return None
        next_at = _next_run_after(task, now)
        next_token = new_token() if next_at else ""
        claimable = Task.objects.pending().filter(pk=task.pk, run_token=token)
        changes = {
            "status": Task.Status.STARTED,
            "resume_status": "",
            "run_token": next_token,
            "next_datetime": next_at,
        }
    marks = {}
    # Checked here, where the run happens, not only where forms are shown:
    # uWSGI serves without running system checks, rows may predate the
    # rules, and rights change after a run was queued (policy.run_refusal).
    refusal = policy.run_refusal(task, task.started_by, check_user=task.started_by_id is not None)
    argv = runnable_argv(task) if refusal is None else None
    command_line = arguments.command_line(task.command.name, argv) if argv is not None else ""
    marks["prepared"] = time.perf_counter()
    child = Child.spawn(task, argv) if prefork and argv is not None else None
    if child is not None:
        marks["forked"] = time.perf_counter()
    # The claim and the Report row commit together (one durable commit); the
    # next run is spooled only after that commit, or its spooler could read
    # the old token and consume the entry as stale.
    report = None
    try:
        with transaction.atomic():
            if claimable.update(**changes) == 1:
                report = _create_report(task, trigger, now, command_line, child)
    finally:
        if report is None and child is not None:
            child.cancel()
    if report is None:
        logger.info("Task %s was claimed by another process or changed meanwhile.", task_id)
        return None
    marks["claim_committed"] = time.perf_counter()
    if child is not None:
        child.release(report.run_marker())
        marks["released"] = time.perf_counter()
    report.child = child
    report.refusal = refusal
    report.timing_marks = marks
    if next_token:
        try:
            _respool(task.pk, next_token, Report.Trigger.SCHEDULE, next_at)
        except Exception as exc:  # noqa: BLE001 - recorded; recovery re-spools it
            logger.exception("Could not spool the next run of task %s", task.pk)
            report.spool_error = str(exc)
    marks["claimed"] = time.perf_counter()
    return task, report


def runnable_argv(task: Task) -> list[str] | None:
    """Return the argv of the task's command, or None when it cannot run (invalid arguments, inactive)."""
    if not task.command.active:
        return None
    try:
        return arguments.parse_arguments(task.arguments)
    except arguments.ArgumentsError:
        return None


def _create_report(task: Task, trigger: str, now: datetime, command_line: str, child) -> Report:
    return Report.objects.create(
        task=task,
        trigger=trigger if trigger in Report.Trigger.values else Report.Trigger.SCHEDULE,
        user_id=task.started_by_id,
        invocation_datetime=now,
        command_line=command_line,
        host=socket.gethostname(),
        supervisor_pid=os.getpid(),
        supervisor_started=_own_start_time(),
        pid=child.pid if child is not None else None,
        pid_started=child.started if child is not None else None,
        heartbeat=now,
    )


def _own_start_time() -> float | None:
    """Return this process's start time (``processes.start_time``), read once per process."""
    pid = os.getpid()
    if pid not in _own_start:
        _own_start.clear()
        _own_start[pid] = process_start_time(pid)
    return _own_start[pid]


# pid -> start time of this process (a forked process has another pid).
_own_start: dict[int, float | None] = {}


def _skip_slot(task: Task, token: str, now: datetime) -> None:
    """A slot came due while the task is still running: move to the next one."""
    next_at = _next_run_after(task, now)
    next_token = new_token() if next_at else ""
    moved = Task.objects.filter(pk=task.pk, run_token=token, status=Task.Status.STARTED).update(
        run_token=next_token, next_datetime=next_at
    )
    if moved:
        # By primary key, as Stop does (actions.stop): an UPDATE scanning the
        # task's reports through their index can deadlock on MySQL/MariaDB
        # with the end of the run, which prunes old reports through it.
        running = list(
            Report.objects.filter(task=task, finished_datetime__isnull=True).values_list("pk", flat=True)
        )
        Report.objects.filter(pk__in=running, finished_datetime__isnull=True).update(
            skipped_runs=F("skipped_runs") + 1
        )
        if next_token:
            _respool(task.pk, next_token, Report.Trigger.SCHEDULE, next_at)


process_start_time = processes.start_time


def end_status():
    """The expression of a task's status when its run ends (:meth:`Task.end_status`)."""
    return Task.end_status()


def working_dir() -> str:
    from django.conf import settings

    configured = app_settings.WORKING_DIR or getattr(settings, "BASE_DIR", None)
    return str(configured) if configured else _STARTUP_CWD


_STARTUP_CWD = os.getcwd()


def _seconds(value) -> str:
    """Format a number of seconds without a useless ".0" (2 -> "2", 2.5 -> "2.5")."""
    return "%g" % value


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _reap(pid: int) -> None:
    """Wait for a child that was sent SIGKILL (blocks until it is gone)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class Child:
    """The forked child process of one run, and the supervisor's ends of its pipes.

    :meth:`spawn` forks it; it prepares itself (process group, death signal,
    signals, file descriptors, working directory, log capture) and then waits
    for :meth:`release`, which hands it the run's ``TASKMANAGER_RUN`` marker,
    before it imports and runs the command; :meth:`cancel` makes it leave
    without running anything. So the child can be forked before the run is
    claimed (its pid goes into the report in the claim's own commit) and no
    code of the command runs for a claim that was lost.
    """

    def __init__(self, pid: int, fds: dict, go: socket.socket, started: float | None):
        self.pid = pid
        #: Read ends of the child's fd 1, fd 2 and record pipe -> stream (None: records).
        self.fds = fds
        self.go = go
        self.started = started

    @classmethod
    def spawn(cls, task: Task, argv: list[str]) -> "Child":
        """Fork the child that will run ``task``'s command with ``argv``; it waits for release()."""
        _become_subreaper()
        _warm_up()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rec_r, rec_w = os.pipe()
        for fd in (out_w, err_w, rec_w):
            logcapture.enlarge_pipe(fd)
        # A socket pair rather than a pipe: sending to a child that died
        # fails with an error (MSG_NOSIGNAL), never with SIGPIPE.
        go, go_child = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        pid = os.fork()
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            os.close(out_r)
            os.close(err_r)
            os.close(rec_r)
            go.close()
            _child_main(task, argv, out_w, err_w, rec_w, parent=parent, go=go_child.detach())
        go_child.close()
        for fd in (out_w, err_w, rec_w):
            os.close(fd)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first
        fds = {out_r: logcapture.STDOUT, err_r: logcapture.STDERR, rec_r: None}
        return cls(pid, fds, go, _start_time_of_child(pid, before, after))

    def release(self, marker: str) -> None:
        """Let the child run the command, carrying ``marker`` in its environment."""
        try:
            self.go.sendall(marker.encode() + b"\n", socket.MSG_NOSIGNAL)
        except OSError:
            pass  # the child is gone already: follow() reads its end
        self.go.close()

    def cancel(self) -> None:
        """Kill the child (it has not run anything of the command), reap it, close the pipes."""
        self.go.close()
        processes.kill_group(self.pid, signal.SIGKILL)
        processes.kill(self.pid, signal.SIGKILL)
        _reap(self.pid)
        for fd in self.fds:
            os.close(fd)
        self.fds = {}


def _start_time_of_child(pid: int, before: int, after: int) -> float | None:
    """Return the start time of the child ``pid`` just forked, as ``processes.start_time`` gives it.

    ``before`` and ``after`` are ``CLOCK_BOOTTIME`` (ns) read just before and
    just after the fork. Linux stamps a new process with that clock during
    the fork and ``/proc`` shows it in clock ticks, rounded down: when both
    reads fall in the same tick, that tick is the start time, and reading
    another process's ``/proc/<pid>/stat`` (a fifth of a millisecond) is spared.
    """
    per_tick = 1_000_000_000 // _CLOCK_TICKS
    if before // per_tick == after // per_tick:
        return float(before // per_tick)
    return processes.start_time(pid)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Whether this process is a child subreaper, by pid (see _become_subreaper).
_subreaper: dict[int, bool] = {}


def _become_subreaper() -> bool:
    """In a uWSGI spooler, make this process the reaper of the runs' orphans (once per process).

    Orphans of a run (a subprocess that called setsid and outlived the
    command) then re-parent to this spooler process, which kills them when
    the run ends. Only in a spooler: it has no other children.
    """
    pid = os.getpid()
    if pid not in _subreaper:
        _subreaper.clear()
        _subreaper[pid] = uwsgi_runtime.in_spooler() and processes.set_child_subreaper()
    return _subreaper[pid]


# The pid of the process whose Django management machinery is warm (see _warm_up).
_warm_pid: int | None = None


def _warm_up() -> None:
    """Once per process, build before forking what each child would otherwise build again.

    Django's management machinery (its argument parser, the translations of
    its help texts, their regular expressions) fills caches on first use.
    Filled once here, every forked child finds them ready instead of paying
    for them in each run. Only Django's code runs here, through a command that
    does nothing: the task's command is imported and run by the child alone.
    """
    global _warm_pid
    if _warm_pid == os.getpid():
        return
    _warm_pid = os.getpid()
    import io

    from django.core.management import call_command
    from django.core.management.base import BaseCommand

    class Nothing(BaseCommand):
        def handle(self, *args, **options):
            pass

    sink = io.StringIO()
    try:
        call_command(Nothing(), stdout=sink, stderr=sink)
        processes.python_executable()  # cached: the children use it (_child_main)
    except Exception:  # noqa: BLE001 - only a speed-up: the children do it themselves
        logger.debug("Warming up the management machinery failed", exc_info=True)


class Supervisor:
    """Fork the command's child process and follow it until it ends."""

    def __init__(self, task: Task, report: Report):
        self.task = task
        self.report = report
        self.seq = 0
        # Rows for logstore.insert_rows(), written by flush().
        self.batch: list[tuple] = []
        self.batch_bytes = 0
        self.stamps = logstore.Stamps()
        self.report_id = report.pk
        # Style markers may span lines: one reader per raw stream.
        self.raw_marks = {
            logcapture.STDOUT: logcapture.LevelMarks(),
            logcapture.STDERR: logcapture.LevelMarks(),
        }
        # Read once per run: add_line() runs for every line of the log.
        self.max_log_bytes = app_settings.MAX_LOG_BYTES
        self.batch_lines_limit = app_settings.LOG_BATCH_LINES
        self.batch_bytes_limit = app_settings.LOG_BATCH_BYTES
        self.stored_bytes = 0
        self.lines = self.warnings = self.errors = 0
        self.truncated = False
        self.outcome: str | None = None
        self.stop_user: str | None = None
        self.timed_out = False
        self.kill_at: float | None = None
        self.report_changes: dict = {}
        # Why the run cannot be reported any more: "deleted" (its report or
        # task was deleted) or "closed" (recovery closed it as interrupted).
        self.gone: str | None = None
        self.timeout = task.timeout or app_settings.DEFAULT_TIMEOUT
        self.subreaper = _become_subreaper()
        self.terminating = False
        self.child_started: float | None = None
        self.db_retry_at = 0.0
        self.lost_lines = 0
        # The child's pidfd while follow() runs (readable once the child exited).
        self.exit_fd: int | None = None
        # perf_counter() at the end of each phase (see _log_timing).
        self.marks: dict[str, float] = dict(getattr(report, "timing_marks", None) or {})

    # -- log lines -------------------------------------------------------------
    def add_line(self, level: int, stream: str, text: str, ts: int | None = None) -> None:
        """Count and store one line of the log; ``ts``: unix time in microseconds (default now).

        Lines of stream SYSTEM (the app's own) are never counted. A line
        longer than logcapture.MAX_LINE_CHARS is stored, and counted, as
        several lines.
        """
        if self.gone:
            return
        text = logcapture.clean_text(text)
        if len(text) > logcapture.MAX_LINE_CHARS:
            for piece in logcapture.split_long(text):
                self.add_line(level, stream, piece, ts)
            return
        if stream != logcapture.SYSTEM:
            self.lines += 1
            if level >= logcapture.ERROR:
                self.errors += 1
            elif level >= logcapture.WARNING:
                self.warnings += 1
        self.store_line(level, stream, text, ts)

    def store_line(self, level: int, stream: str, text: str, ts: int | None) -> None:
        """Queue one cleaned line (at most MAX_LINE_CHARS) for the next batch."""
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if self.stored_bytes + size > self.max_log_bytes and stream != logcapture.SYSTEM:
            if not self.truncated:
                self.truncated = True
                self.add_line(
                    logcapture.WARNING,
                    logcapture.SYSTEM,
                    "The log reached its size limit (TASKMANAGER_MAX_LOG_BYTES = %d bytes): "
                    "later lines are counted but not stored." % self.max_log_bytes,
                )
            return
        self.stored_bytes += size
        batch = self.batch
        if batch and self.batch_bytes + size > self.batch_bytes_limit:
            # Flush first: a batch stays within its byte bound (one INSERT
            # must fit MySQL's max_allowed_packet) unless one line exceeds it.
            self.safe_flush()
            batch = self.batch
        self.seq += 1
        batch.append(
            (
                self.report_id,
                self.seq,
                level,
                2 if level >= logcapture.ERROR else 1 if level >= logcapture.WARNING else 0,
                stream,
                self.stamps(ts or time.time_ns() // 1000),
                text,
            )
        )
        self.batch_bytes += size
        if len(batch) >= self.batch_lines_limit or self.batch_bytes >= self.batch_bytes_limit:
            self.safe_flush()

    def flush(self, running_only: bool = False, savepoint: bool = True) -> int | None:
        """Write pending lines and counters to the database, in one transaction.

        Return the number of report rows updated (0: the report is gone, or
        with ``running_only`` already finished, and then nothing is written),
        None if nothing was pending. Raise DatabaseError as the database
        does; nothing pending is lost then. Inside a transaction, without
        ``savepoint``, a ``running_only`` flush that updated nothing marks the
        enclosing transaction for rollback.
        """
        if not self.batch and not self.report_changes:
            return None
        report = Report.objects.filter(pk=self.report.pk)
        if running_only:
            report = report.filter(finished_datetime__isnull=True)
        with transaction.atomic(savepoint=savepoint):
            if self.batch:
                logstore.insert_rows(self.batch)
            updated = report.update(
                lines=self.lines, warnings=self.warnings, errors=self.errors, **self.report_changes
            )
            if running_only and updated != 1:
                transaction.set_rollback(True)
                return updated
        self.batch = []
        self.batch_bytes = 0
        self.report_changes = {}
        return updated

    def safe_flush(self, force: bool = False) -> None:
        """Flush while the command runs, surviving database errors.

        A lost connection (DB restart, terminated backend) is closed and the
        pending lines are kept for the next attempt, at most one per
        _DB_RETRY_SECONDS (or now with ``force``); past 4 batches' worth they
        are dropped and counted, so memory stays bounded. A report that
        disappeared (its task was deleted) ends the run quietly.
        """
        if self.gone or (not force and time.monotonic() < self.db_retry_at):
            return
        try:
            updated = self.flush()
        except DatabaseError as exc:
            self.db_failed(exc)
            if isinstance(exc, IntegrityError):
                self.check_report()
            if len(self.batch) > 4 * app_settings.LOG_BATCH_LINES or (
                self.batch_bytes > 4 * app_settings.LOG_BATCH_BYTES
            ):
                self.lost_lines += len(self.batch)
                self.batch, self.batch_bytes = [], 0
            return
        if updated == 0:
            self.check_report()
        elif self.lost_lines:
            lost, self.lost_lines = self.lost_lines, 0
            self.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "%d log line(s) were lost while the database was unreachable." % lost,
            )

    def db_failed(self, exc: Exception) -> None:
        logger.warning("Run of task %s: database error (%s); retrying.", self.task.pk, exc)
        self.db_retry_at = time.monotonic() + _DB_RETRY_SECONDS
        # Drop a broken connection (server restarted, backend terminated);
        # the next query opens a new one. A working one is kept: "database
        # is locked" breaks nothing, and see _abandon_connections for SQLite.
        for conn in connections.all(initialized_only=True):
            if conn.connection is None or conn.in_atomic_block or not conn.errors_occurred:
                continue
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()

    def check_report(self) -> None:
        """Find out whether the report still exists and is running; set ``gone`` if not."""
        try:
            row = Report.objects.filter(pk=self.report.pk).values_list("finished_datetime", flat=True)
            found = list(row[:1])
        except DatabaseError as exc:
            self.db_failed(exc)
            return
        if not found:
            self.set_gone("deleted")
        elif found[0] is not None:
            self.set_gone("closed")

    def set_gone(self, why: str) -> None:
        if self.gone:
            return
        self.gone = why
        self.batch, self.batch_bytes, self.report_changes = [], 0, {}
        if why == "deleted":
            logger.info(
                "The report of a running task %s was deleted (the task was deleted?): "
                "the run is terminated without a report.",
                self.task.pk,
            )
        else:
            logger.warning(
                "Run of task %s was closed by recovery while still supervised "
                "(heartbeat too old?): the command is terminated.",
                self.task.pk,
            )

    # -- the run ---------------------------------------------------------------
    def run(self) -> None:
        """Run the command to its end and record the outcome; never leave a child behind."""
        global _current_report_id
        _current_report_id = self.report.pk
        try:
            self._run()
        finally:
            _current_report_id = None

    def _run(self) -> None:
        task = self.task
        child = getattr(self.report, "child", None)
        if child is None:
            try:
                argv = arguments.parse_arguments(task.arguments)
            except arguments.ArgumentsError as exc:
                self.add_line(logcapture.ERROR, logcapture.SYSTEM, "Invalid arguments: %s" % exc)
                return self.finish("invalid arguments", failed=True)
            if not task.command.active:
                self.add_line(
                    logcapture.ERROR,
                    logcapture.SYSTEM,
                    "The command %s is no longer active: activate it in Commands to run this task."
                    % task.command.name,
                )
                return self.finish("command inactive", failed=True)
            refusal = getattr(self.report, "refusal", None)
            if refusal is None and not hasattr(self.report, "refusal"):
                refusal = policy.run_refusal(task, task.started_by, check_user=task.started_by_id is not None)
            if refusal:
                self.add_line(logcapture.ERROR, logcapture.SYSTEM, "Refused, nothing was run: %s" % refusal)
                return self.finish("not allowed", failed=True)
        spool_error = getattr(self.report, "spool_error", None)
        if spool_error:
            self.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "The next run could not be spooled (%s); recovery will retry." % spool_error,
            )
        if child is None:
            child = self.fork(argv)
        self.child_started = child.started
        try:
            status = self.follow(child.pid, child.fds)
        except Exception as exc:  # noqa: BLE001 - follow() has killed and reaped the child
            logger.exception("Supervising the run of task %s failed", task.pk)
            self.add_line(
                logcapture.ERROR,
                logcapture.SYSTEM,
                "The supervisor failed (%s: %s); the command was killed." % (type(exc).__name__, exc),
            )
            return self.finish("supervisor error", failed=True)
        self.marks["exited"] = time.perf_counter()
        self.finish_from_status(status)

    def fork(self, argv: list[str]) -> "Child":
        """Fork the command's child for a report claimed without ``prefork``; record it; release it."""
        child = Child.spawn(self.task, argv)
        self.marks["forked"] = time.perf_counter()
        self.report.pid = child.pid
        self.report.pid_started = child.started
        self.report_changes.update(pid=child.pid, pid_started=child.started)
        # Recorded before the command starts: if this process dies, recovery needs the group.
        self.safe_flush(force=True)
        child.release(self.report.run_marker())
        self.marks["released"] = time.perf_counter()
        return child

    def follow(self, pid: int, fds: dict) -> int:
        """Read the child's output until it exits; return its wait status.

        Every LOG_FLUSH_SECONDS pending lines are written, every
        STOP_POLL_SECONDS the report is checked for a stop request (or for
        having been deleted or closed), and the timeout is enforced. When the
        child has exited, what it left behind is killed. If anything here
        raises, the child's group is killed and reaped before the exception
        propagates: a child is never left unsupervised.
        """
        sel = selectors.DefaultSelector()
        buffers = {}
        records = logcapture.LineBuffer()
        for fd, stream in fds.items():
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, stream)
            # Records are never cut: their size is bounded by the child.
            buffers[fd] = logcapture.LineBuffer(
                logcapture.MAX_RECORD_BYTES if stream is None else logcapture.MAX_LINE_CHARS
            )
        pidfd = _pidfd_open(pid)
        if pidfd is not None:
            # Wakes the loop the moment the child exits (no polling delay).
            sel.register(pidfd, selectors.EVENT_READ, _EXITED)
        self.exit_fd = pidfd
        started = time.monotonic()
        last_flush = last_poll = last_beat = started
        status = None
        try:
            while True:
                wait = self.next_due(started, last_flush, last_poll) - time.monotonic()
                for key, _ in sel.select(timeout=min(max(wait, 0.0), 0.2)):
                    if key.data is not _EXITED:
                        self.read_fd(key.fd, key.data, buffers, records, sel)
                now = time.monotonic()
                done, wait_status = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = wait_status
                    break
                if now - last_flush >= app_settings.LOG_FLUSH_SECONDS:
                    if now - last_beat >= app_settings.HEARTBEAT_SECONDS:
                        self.report_changes["heartbeat"] = timezone.now()
                        last_beat = now
                    self.safe_flush()
                    last_flush = now
                ending = self.stop_user is not None or self.timed_out or self.gone
                if not ending and now - last_poll >= app_settings.STOP_POLL_SECONDS:
                    last_poll = now
                    self.poll_stop(pid)
                    ending = self.stop_user is not None or self.gone
                if self.gone and not self.terminating:
                    self.terminate(pid)
                if self.timeout and not ending and now - started > self.timeout:
                    self.timed_out = True
                    self.add_line(
                        logcapture.WARNING,
                        logcapture.SYSTEM,
                        "Timed out after %s seconds: terminating the command." % _seconds(self.timeout),
                    )
                    self.terminate(pid)
                if self.kill_at is not None and now >= self.kill_at:
                    self.kill_group(pid, signal.SIGKILL)
                    self.kill_at = None
        finally:
            self.exit_fd = None
            if pidfd is not None:
                sel.unregister(pidfd)
                os.close(pidfd)
            # Whatever the command left behind goes too: its process group,
            # and (in a spooler) orphans that left the group.
            self.kill_group(pid, signal.SIGKILL)
            if status is None:
                _reap(pid)
            self.sweep_orphans()
            deadline = time.monotonic() + 1.0
            while sel.get_map() and time.monotonic() < deadline:
                events = sel.select(timeout=0.1)
                if not events:
                    break
                for key, _ in events:
                    self.read_fd(key.fd, key.data, buffers, records, sel)
            for fd in list(sel.get_map()):
                sel.unregister(fd)
                os.close(fd)
                self.emit(fds[fd], buffers[fd].close())
            sel.close()
        return status

    def next_due(self, started: float, last_flush: float, last_poll: float) -> float:
        """Return the monotonic time of the loop's next timed duty (flush, poll, timeout, SIGKILL)."""
        due = [last_flush + app_settings.LOG_FLUSH_SECONDS]
        if not (self.stop_user is not None or self.timed_out or self.gone):
            due.append(last_poll + app_settings.STOP_POLL_SECONDS)
            if self.timeout:
                due.append(started + self.timeout)
        if self.kill_at is not None:
            due.append(self.kill_at)
        return min(due)

    def sweep_orphans(self) -> int:
        """Kill and reap the run's processes that re-parented to this subreaper; return how many.

        They are the children of this process started after the command's
        child: the supervisor starts no other process during a run.
        """
        if not self.subreaper or self.child_started is None:
            return 0
        killed = 0
        me = os.getpid()
        # Killing one may orphan its own children, which then re-parent here.
        for _ in range(20):
            if not processes.has_children():
                break
            ours = [pid for pid, born in processes.children(me) if born >= self.child_started]
            if not ours:
                break
            for pid in ours:
                killed += processes.kill(pid, signal.SIGKILL)
            for pid in ours:
                _reap(pid)
        if killed:
            self.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "%d process(es) started by the command outlived it and were killed." % killed,
            )
        return killed

    def read_fd(self, fd, stream, buffers, records, sel) -> None:
        try:
            data = os.read(fd, logcapture.READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            sel.unregister(fd)
            os.close(fd)
            self.emit(stream, buffers[fd].close())
            return
        self.emit(stream, buffers[fd].feed(data))
        if len(data) < logcapture.SMALL_READ:
            # A trickle: let lines gather before the next read. Waking up for
            # every line a fast command writes costs both processes more
            # than the line itself; the pause is far below what a reader sees.
            # It ends early when the child exits (its pidfd turns readable):
            # a run's last lines are not worth a pause.
            if self.exit_fd is None:
                time.sleep(logcapture.READ_PAUSE)
            else:
                select.select([self.exit_fd], [], [], logcapture.READ_PAUSE)

    def emit(self, stream: str | None, lines: list[str]) -> None:
        """Store lines read from the pipe of ``stream`` (None: the record pipe)."""
        if stream is None:
            self.emit_records(lines)
        else:
            self.emit_raw(stream, lines)

    def emit_raw(self, stream: str, lines: list[str]) -> None:
        """Store lines of fd 1 (INFO) or fd 2 (WARNING), stamped with the time they were read."""
        if not lines:
            return
        level = logcapture.INFO if stream == logcapture.STDOUT else logcapture.WARNING
        marks = self.raw_marks[stream]
        now = time.time_ns() // 1000
        for line in lines:
            if marks.open is None and not logcapture.has_marks(line):
                self.add_line(level, stream, line, now)
            else:
                lvl, line = marks.split(line, level)
                self.add_line(lvl, stream, line, now)

    def emit_records(self, lines: list[str]) -> None:
        """Store the records of the record pipe; act on the messages to the supervisor."""
        for record in logcapture.decode_records(lines):
            try:
                ts, level, stream, text = record
            except (TypeError, ValueError):
                continue
            if (
                type(stream) is not str
                or type(text) is not str
                or type(level) is not int
                or type(ts) is not int
            ):
                continue  # not written by logcapture.RecordWriter
            if stream.startswith("_"):
                if stream == _OUTCOME:
                    self.outcome = text
                elif stream == progress.PROGRESS_STREAM:
                    # Only the latest update matters; it goes out with the next flush.
                    changes = progress.parse_record(text)
                    if changes:
                        stamp = datetime.fromtimestamp(ts / 1e6, UTC) if ts else timezone.now()
                        self.report_changes.update(changes, progress_at=stamp)
                continue
            self.add_line(level, stream, text, ts)

    def poll_stop(self, pid: int) -> None:
        """Terminate the child if a stop was requested or the report was deleted or closed."""
        try:
            rows = list(
                Report.objects.filter(pk=self.report.pk).values_list(
                    "stop_requested_at", "stopped_by__username", "finished_datetime"
                )[:1]
            )
        except DatabaseError as exc:
            self.db_failed(exc)
            return
        if not rows:
            self.set_gone("deleted")
        elif rows[0][2] is not None:
            self.set_gone("closed")
        elif rows[0][0] is not None:
            self.stop_user = rows[0][1] or "?"
            self.add_line(logcapture.WARNING, logcapture.SYSTEM, "Stop requested by %s." % self.stop_user)
        else:
            return
        self.terminate(pid)

    def terminate(self, pid: int) -> None:
        """SIGTERM the child's process group; SIGKILL follows after STOP_GRACE_SECONDS."""
        self.terminating = True
        self.kill_group(pid, signal.SIGTERM)
        self.kill_at = time.monotonic() + app_settings.STOP_GRACE_SECONDS

    @staticmethod
    def kill_group(pid: int, sig: int) -> None:
        """Send ``sig`` to the child's process group, and to the child if it left the group."""
        processes.kill_group(pid, sig)
        try:
            moved = os.getpgid(pid) != pid  # the command called setsid() or setpgid()
        except (ProcessLookupError, PermissionError):
            return
        if moved:
            processes.kill(pid, sig)

    def finish_from_status(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if self.stop_user is not None:
            reason, failed = "stopped by user %s" % self.stop_user, True
        elif self.timed_out:
            reason, failed = "timed out after %s seconds" % _seconds(self.timeout), True
        elif self.outcome:
            reason, failed = self.outcome, True
        elif code < 0:
            reason, failed = "signal %s" % signal.Signals(-code).name, True
        elif code != 0:
            reason, failed = "exit code %d" % code, True
        else:
            reason, failed = "completed", False
        self.finish(reason, failed)

    def finish(self, reason: str, failed: bool) -> None:
        """Record the run's end; retry while the database is unreachable.

        A run whose report was deleted meanwhile ends without writing one;
        one closed by recovery is left as recovery wrote it.
        """
        for pause in (*_FINISH_PAUSES, None):
            if self.gone:
                return self.finish_gone()
            try:
                return self._finish(reason, failed)
            except IntegrityError as exc:
                # Log lines of a report deleted meanwhile break their foreign key.
                self.db_failed(exc)
                self.check_report()
                if not self.gone and pause is None:
                    raise
            except DatabaseError as exc:
                if pause is None:
                    raise
                self.db_failed(exc)
            if pause is not None:
                time.sleep(pause)

    def finish_gone(self) -> None:
        if self.gone != "deleted":
            return
        # The task may still exist (only its report was deleted): take it
        # out of STARTED, unless another run of it is going on.
        running = Report.objects.running().filter(task_id=self.task.pk)
        Task.objects.filter(pk=self.task.pk, status=Task.Status.STARTED).exclude(Exists(running)).end_run()

    def _finish(self, reason: str, failed: bool) -> None:
        # No close_old_connections() here: with CONN_MAX_AGE = 0 it would
        # reconnect for nothing (costly on SQLite); a connection that broke
        # during the run fails the first query, and finish() retries.
        skipped = next(
            iter(Report.objects.filter(pk=self.report.pk).values_list("skipped_runs", flat=True)), 0
        )
        if skipped and not getattr(self, "_skipped_noted", False):
            self._skipped_noted = True
            self.add_line(
                logcapture.WARNING,
                logcapture.SYSTEM,
                "%d scheduled run(s) came due while this run was going and were skipped." % skipped,
            )
        if failed:
            result = Task.Result.FAILED
        elif self.errors:
            result = Task.Result.ERRORS
        elif self.warnings:
            result = Task.Result.WARNINGS
        else:
            result = Task.Result.OK
        now = timezone.now()
        started = self.report.invocation_datetime
        self.report_changes.update(result=result, finished_datetime=now, end_reason=reason[:200])
        # flush() forgets the lines it wrote; should this transaction fail
        # after it, they are still to be written by the next attempt.
        batch, batch_bytes = self.batch, self.batch_bytes
        try:
            with transaction.atomic():
                ended = self.flush(running_only=True, savepoint=False) == 1
                # (not ended: the transaction is marked for rollback)
                more_to_prune = self.close_run(started, now, result) if ended else False
        except BaseException:
            self.batch, self.batch_bytes = batch, batch_bytes
            raise
        if not ended:
            # Deleted, or closed by recovery meanwhile: leave both as they are.
            self.report_changes = {}
            return self.check_report()
        self.report.result = result
        self.report.end_reason = reason
        self.report.finished_datetime = now
        self.marks["saved"] = time.perf_counter()
        if more_to_prune:
            # Big logs are deleted chunk by chunk, each chunk its own transaction.
            try:
                prune_reports(self.task.pk)
            except Exception:  # noqa: BLE001 - pruning must never change the run's outcome
                logger.exception("Could not prune the reports of task %s", self.task.pk)
        self.marks["pruned"] = time.perf_counter()
        # After the finish transaction: notices never change the run's result
        # (notify_run_end logs and swallows every failure).
        from .notifications import notify_run_end

        notify_run_end(self.task, self.report)

    def close_run(self, started: datetime, now: datetime, result: str) -> bool:
        """Write the task's side of the run's end, its history, and prune; in the finish transaction.

        Return whether old reports are left for :func:`prune_reports` (after the commit).
        """
        duration = history.run_duration(started, now)
        task_ended = Task.objects.filter(pk=self.task.pk, status=Task.Status.STARTED).end_run(
            last_datetime=started,
            last_result=result,
            last_duration=duration,
            errors=self.errors,
            warnings=self.warnings,
        )
        if not task_ended:
            Task.objects.filter(pk=self.task.pk).update(last_duration=duration)
        # The run's history and the pruning of old reports share this commit,
        # in a savepoint: neither may change the run's outcome. If it fails,
        # the history is written again alone, and pruning waits for the
        # commit (prune_reports then logs its own failure).
        try:
            with transaction.atomic():
                history.record_run(self.task.pk, started, now, result, update_task=False)
                return prune_small_reports(self.task.pk)
        except Exception:  # noqa: BLE001 - see above
            logger.debug("History or pruning failed for task %s; retrying apart", self.task.pk, exc_info=True)
        try:
            with transaction.atomic():
                history.record_run(self.task.pk, started, now, result, update_task=False)
        except Exception:  # noqa: BLE001 - the chart's history must never change the run's outcome
            logger.exception("Could not record the run history of task %s", self.task.pk)
        return True


def _child_main(
    task: Task,
    argv: list[str],
    out_w: int,
    err_w: int,
    rec_w: int,
    marker: str = "",
    parent: int = 0,
    go: int | None = None,
) -> None:
    """Run the command in the forked child and leave with ``os._exit``; never return.

    With ``go`` (a socket fd), wait after the preparations until the
    supervisor sends the run marker on it (:meth:`Child.release`); leave
    without running anything if it closes it instead (:meth:`Child.cancel`).
    """
    code = _EXIT_EXCEPTION
    writer = None
    try:
        _abandon_connections()
        os.setpgid(0, 0)
        processes.set_pdeathsig(signal.SIGKILL)
        if parent and os.getppid() != parent:
            os._exit(code)  # the supervisor died before PDEATHSIG was armed
        # uWSGI catches or ignores these in its processes; the command gets
        # the defaults a shell would give it (SIGSEGV must kill, not hang).
        for sig in _RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (devnull, out_w, err_w):
            os.close(fd)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
        sys.stdin = open(0, closefd=False)
        os.chdir(working_dir())
        # sys.executable is the uwsgi binary here: commands that start Python
        # (subprocess, multiprocessing "spawn") need the interpreter.
        processes.use_python_executable()
        writer = logcapture.RecordWriter(rec_w)
        logcapture.install_logging_capture(writer)
        progress.attach(writer)
        # Imported while the supervisor commits the claim (the admin imports
        # command modules in-process too, to check arguments); a failure is
        # reported once the run is released.
        loaded = _load_command(task)
        if go is not None:
            marker = _await_release(go)
            if marker is None:
                code = 0
                return  # the claim was lost: leave (finally) without running the command
        if marker:
            os.environ[processes.RUN_ENV] = marker
        code = _run_command(task, argv, writer, loaded)
    except BaseException:  # noqa: BLE001 - the child must always leave through os._exit
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)


def _await_release(go: int) -> str | None:
    """Block until the supervisor sends the run marker on ``go``; return it, or None if it closed it."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(go, 4096)
        if not chunk:
            return None
        data += chunk
    os.close(go)
    return data[:-1].decode()


# Database connections a forked child inherited (see _abandon_connections).
_abandoned: list = []


def _abandon_connections() -> None:
    """In a forked child, drop the database connections inherited from the supervisor, unused.

    The supervisor keeps its connections while the child runs. The child
    must never send anything on them, not even the goodbye of a close (which
    would end the supervisor's PostgreSQL or MySQL session): the driver's
    objects are kept referenced here, so no finalizer ever runs before the
    child leaves through ``os._exit``, and Django's wrappers forget them, so
    the command opens connections of its own. On SQLite the child's own
    connection shares the process's lock bookkeeping with the inherited
    one, which the supervisor backs by keeping its connection open until
    the child has exited (:meth:`Supervisor.db_failed` closes only
    connections that are unusable, which a SQLite one never is).
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _abandoned.append(conn.connection)
            conn.connection = None
        # PostgreSQL with OPTIONS["pool"]: the pool (a class attribute) holds
        # the supervisor's idle connections; the child makes a pool of its own.
        pools = getattr(type(conn), "_connection_pools", None)
        if pools and conn.alias in pools:
            _abandoned.append(pools.pop(conn.alias))


def _load_command(task: Task):
    """Return the task's command instance, or the exception importing or instantiating it raised."""
    from django.core.management import load_command_class

    try:
        return load_command_class(task.command.app_name, task.command.name)
    except BaseException as exc:  # noqa: BLE001 - raised again by _run_command, in the run
        return exc


def _run_command(task: Task, argv: list[str], writer: "logcapture.RecordWriter", loaded=None) -> int:
    """Run the command (``loaded`` by _load_command, else loaded here); return the exit code."""
    from django.core.management import call_command

    out = logcapture.CommandOutput(writer, logcapture.STDOUT, logcapture.INFO)
    err = logcapture.CommandOutput(writer, logcapture.STDERR, logcapture.ERROR)
    try:
        command = _load_command(task) if loaded is None else loaded
        if isinstance(command, BaseException):
            raise command
        command.style = logcapture.level_style()
        # --no-color / --force-color would make execute() replace the style
        # that marks levels (styled errors would count as INFO); the log is
        # never coloured anyway.
        call_command(command, *argv, stdout=out, stderr=err, no_color=False, force_color=False)
        return 0
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        err.write(str(exc.code) + "\n")
        return 1
    except BaseException as exc:  # noqa: BLE001 - reported, then the child exits
        writer.write(logcapture.ERROR, logcapture.SYSTEM, "".join(traceback.format_exception(exc)).rstrip())
        writer.write(0, _OUTCOME, "exception: %s" % type(exc).__name__)
        return _EXIT_EXCEPTION
    finally:
        out.close_line()
        err.close_line()

"""What runs inside a uWSGI spooler process: the spool handler, recovery, heartbeat and timer.

Imported by ``TaskManagerConfig.ready()`` only when this uWSGI instance has
spooler processes (``uwsgi_runtime.spooler_configured()``), so that the
handler is registered in the process that loads Django and forked spoolers
inherit it (non-lazy mode). It needs the app registry: never import it before.

The handler always returns ``uwsgi.SPOOL_OK``: any other outcome makes uWSGI
run the same file again at every scan, for ever.
"""

import logging
import os

from django.db import close_old_connections
from django.utils.module_loading import import_string

from .. import db, dbclock, processes, recovery, spoolaside, spoolfiles
from ..conf import app_settings
from ..models import Report, SpoolerHeartbeat
from ..spoolfiles import HANDLER_NAME
from ..uwsgi_runtime import spool_dir, spooler_configured, uwsgi
from . import get_backend
from .uwsgi import UwsgiBackend

# The logger of the whole uWSGI backend (documented in docs/deploy.rst).
logger = logging.getLogger("taskmanager.spooler")


def _runner():
    """Return :mod:`taskmanager.runner`, imported on first use inside a spooler.

    Deferred on purpose: this module is imported in the uWSGI master (via
    ``ready()``) and in web workers, which never run a task; and the runner
    reads the working directory at import (``runner.child_main``), which must
    be the spooler's (``spooler-chdir``), not the master's.
    """
    # Deferred: see the docstring.
    from .. import runner

    return runner


def _djangotasks():
    """Return :mod:`taskmanager.djangotasks.run`, for a spool hint of a django.tasks row."""
    # Deferred: as the runner (see _runner), and only hints of django.tasks rows need it.
    from ..djangotasks import run

    return run


@db.pin
def handle_spool_entry(env: dict) -> int:
    """Run the task named by a spool entry; return ``uwsgi.SPOOL_OK``, always.

    ``env`` is the decoded spool dict (str keys and values, as
    ``uwsgidecorators`` passes it). Every exception, ``SystemExit`` included,
    is caught and logged: raising would make uWSGI re-run the file for ever.
    """
    ok = getattr(uwsgi, "SPOOL_OK", -2)
    try:
        if env.get("trigger") == Report.Trigger.ENQUEUE:
            _djangotasks().execute_hint(env.get("token", ""))
        else:
            runner = _runner()
            task_id = int(env.get("task", 0))
            runner.execute(task_id, env.get("token", ""), env.get("trigger", "schedule"))
    except BaseException:  # noqa: BLE001 - see the docstring
        logger.exception("taskmanager: spool entry %r failed outside the run", env)
    return ok


def make_dispatcher(chained, functions):
    """Return the ``uwsgi.spooler`` callable: this app's entries, others chained to ``uwsgidecorators``.

    ``chained`` is ``uwsgidecorators.manage_spool_request`` (projects' own
    ``@spool`` functions, registered in ``functions``). A file neither can
    run (not UTF-8, no or an unknown ``ud_spool_func``) is kept once in the
    spool directory's ``unreadable/`` (:mod:`taskmanager.spoolaside`), logged
    in one line, and consumed (``SPOOL_OK``): never retried.
    """
    ok = getattr(uwsgi, "SPOOL_OK", -2)

    def taskmanager_dispatch(env):
        raw = {k.encode() if isinstance(k, str) else k: v for k, v in env.items()}
        name = raw.pop(b"spooler_task_name", b"")
        reason = spoolaside.problem(raw, functions.__contains__)
        if reason:
            _move_aside(name, reason)
            return ok
        if raw.get(b"ud_spool_func") == HANDLER_NAME.encode():
            if not spoolfiles.known_version(raw):
                _leave_for_newer(name, raw.get(b"version", b"?").decode(errors="replace"))
                return ok
            return handle_spool_entry({k.decode(): v.decode() for k, v in raw.items()})
        return chained(env)

    return taskmanager_dispatch


def _move_aside(name, reason: str) -> None:
    """Keep an unreadable spool file in ``unreadable/`` and log one line; never raise."""
    name = os.fsdecode(name) if isinstance(name, bytes) else str(name)
    directory = spool_dir()
    path = os.path.join(directory, name) if name and not os.path.isabs(name) else name
    try:
        target = spoolaside.keep_copy(directory, path)
        logger.error("taskmanager: unreadable spool file %s (%s) moved aside to %s", path, reason, target)
    except Exception as exc:  # noqa: BLE001 - the file is consumed regardless: never a retry loop
        logger.error("taskmanager: unreadable spool file %s (%s) dropped: %s", path, reason, exc)


def _leave_for_newer(name, version: str) -> None:
    """Keep an entry of a payload version this code does not know in ``newer/``; log one line; never raise.

    A node of another version (a rolling deploy) runs it: this one neither
    runs nor consumes it, and never retries it (issue 15). The spooler of a
    node that knows the version puts it back at its start
    (:func:`taskmanager.spoolaside.release_newer`).
    """
    name = os.fsdecode(name) if isinstance(name, bytes) else str(name)
    directory = spool_dir()
    path = os.path.join(directory, name) if name and not os.path.isabs(name) else name
    try:
        target = spoolaside.keep_copy(directory, path, spoolfiles.NEWER_DIRNAME)
        logger.warning(
            "taskmanager: spool file %s has payload version %s, newer than this node's %d: "
            "left in %s for a node that knows it",
            path,
            version,
            spoolfiles.PAYLOAD_VERSION,
            target,
        )
    except Exception as exc:  # noqa: BLE001 - the file is consumed regardless: never a retry loop
        logger.error("taskmanager: spool file %s of payload version %s dropped: %s", path, version, exc)


def register_handler() -> bool:
    """Register the spool handler with ``uwsgidecorators`` when a spooler is configured.

    Return whether it was registered. Outside uWSGI, or without a spooler,
    do nothing (``uwsgidecorators`` raises there).
    """
    if not spooler_configured():
        return False
    # Deferred: importable only inside uWSGI, with a spooler (see the docstring).
    import uwsgidecorators

    def taskmanager_run(env):
        return handle_spool_entry(env)

    uwsgidecorators.spooler_functions[HANDLER_NAME] = taskmanager_run
    uwsgi.spooler = make_dispatcher(uwsgidecorators.manage_spool_request, uwsgidecorators.spooler_functions)

    @uwsgidecorators.postfork
    def taskmanager_spooler_started():
        # Runs in every worker and spooler after fork; only spoolers recover.
        if uwsgi.i_am_the_spooler():
            record_heartbeat()
            spooler_started()
            start_fork_server()

    register_recovery_timer()
    return True


@db.pin
def spooler_started() -> None:
    """Run the recovery of a starting spooler process; never raise."""
    try:
        back = spoolaside.release_newer(spool_dir())
        if back:
            logger.warning(
                "taskmanager: %d spool file(s) of a newer payload version put back to run", len(back)
            )
    except Exception:  # noqa: BLE001 - the entries wait for the next start
        logger.exception("taskmanager: could not put back the spool files of newer versions")
    recovery.on_spooler_start(_runner().current_report_id, *_own_node())


def start_fork_server() -> None:
    """Start this spooler process's fork server now rather than at its first run; never raise."""
    try:
        _runner().prepare_spooler()
    except Exception:  # noqa: BLE001 - the first run starts it (or forks its child itself)
        logger.exception("taskmanager: could not start the spooler's fork server")


def _own_node() -> tuple:
    """``(spool dir, spool, node)`` of this node for recovery, or () when it must not respool.

    Lost entries are respooled (and superseded ones swept) only when the
    configured backend is one whose spoolers these are (``reports_heartbeats``):
    its ``spool`` writes them and its ``node`` is recorded on the tasks.
    """
    try:
        if import_string(app_settings.BACKEND).reports_heartbeats:
            backend = get_backend()
            return (spool_dir(), backend.spool, backend.node())
    except Exception:  # noqa: BLE001 - reported by check E002; the spooler must go on regardless
        logger.exception("taskmanager: the configured backend cannot be loaded; no entry is respooled")
    return ()


def register_recovery_timer() -> int | None:
    """Make an idle spooler process run the periodic recovery every RECOVERY_SECONDS.

    A uWSGI timer signal targeted at "spooler": one idle spooler process
    handles each tick (ticks wait while all are busy). It closes runs whose
    supervisor died on another host (their heartbeat goes stale), respools
    this node's lost entries and sweeps its superseded ones
    (:func:`taskmanager.recovery.periodic_steps`) without waiting for a
    spooler restart. Only the master registers it (with
    ``lazy-apps`` the app loads in every worker, which would add one timer
    each). Return the uWSGI signal number used, or None.
    """
    seconds = app_settings.RECOVERY_SECONDS
    if not seconds or uwsgi.masterpid() != os.getpid():
        return None
    # Deferred: importable only inside uWSGI.
    import uwsgidecorators

    def taskmanager_recovery_tick(signum):
        try:
            record_heartbeat()
            with db.pinned():  # a lagging replica must not show runs long over as running
                recovery.on_timer(_runner().current_report_id, *_own_node())
        except BaseException:  # noqa: BLE001 - a signal handler must not kill the spooler
            logger.exception("taskmanager: periodic recovery failed")

    try:
        timer = uwsgidecorators.timer(max(1, int(seconds)), target="spooler")
        timer(taskmanager_recovery_tick)
    except Exception:  # noqa: BLE001 - no free signal: recovery still runs at spooler start
        logger.exception("taskmanager: could not register the periodic recovery timer")
        return None
    return timer.num


@db.pin
def record_heartbeat() -> None:
    """Record that this node's spooler is alive, its clock's offset and identity (SpoolerHeartbeat row).

    The offset is measured here, once per heartbeat (``taskmanager.dbclock``):
    ``last_seen`` is the database's now, read by the same query.
    """
    try:
        close_old_connections()
        offset = dbclock.measure()
        node, me = UwsgiBackend().node(), processes.node_identity()
        changes = {"last_seen": dbclock.now(), "clock_offset": round(offset, 3), "identity": me}
        row = SpoolerHeartbeat.objects.filter(node=node).values_list("identity", "previous_identity").first()
        if row and row[0] != me:
            # Another identity wrote this node's row since: a restart (new boot or
            # namespace), or, when it had replaced this one, two spoolers of one node string.
            changes["previous_identity"] = row[0]
            if row[1] == me and row[0]:
                changes["clash_seen"] = changes["last_seen"]
        SpoolerHeartbeat.objects.update_or_create(node=node, defaults=changes)
    except Exception:  # noqa: BLE001 - a heartbeat must never break the spooler
        logger.exception("taskmanager: could not record the spooler heartbeat")

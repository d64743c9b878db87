"""The uWSGI spooler backend.

A spool entry is a uWSGI spool file holding only byte strings: the handler
name used by ``uwsgidecorators`` (so projects that also use its ``@spool``
functions keep working), the task id, the run token and the trigger. Nothing
is pickled. See ``docs/deploy.rst`` for the uWSGI options this relies on.

The handler always returns ``uwsgi.SPOOL_OK``: any other outcome makes uWSGI
run the same file again at every scan, for ever.
"""

import logging
import os
from datetime import datetime

# HANDLER_NAME and the uwsgi_runtime helpers are also re-exported here under
# their old names (tests and bench/benchapp/floor.py import them from here).
from ..spoolfiles import HANDLER_NAME, make_entry, node_id
from ..uwsgi_runtime import spool_dir, spool_target_configured, spooler_configured, uwsgi
from . import BaseBackend, SpoolerUnavailable

logger = logging.getLogger("taskmanager.spooler")


class UwsgiBackend(BaseBackend):
    def ensure_available(self) -> None:
        if uwsgi is None:
            raise SpoolerUnavailable(
                "No uWSGI spooler is available: this process is not running under uWSGI, "
                "so the task cannot be started here. Serve the project with uWSGI and a spooler."
            )
        if not spool_target_configured():
            raise SpoolerUnavailable(
                "This uWSGI instance has no spooler configured (the 'spooler' option, or "
                "'spooler-external' pointing at the spool directory of a spooler node)."
            )

    def spool(self, task_id: int, token: str, trigger: str, at: datetime | None = None) -> str:
        self.ensure_available()
        # Identifiers only; "at" rounded up to whole seconds (see make_entry).
        entry = make_entry(task_id, token, trigger, at)
        try:
            path = uwsgi.spool(entry)
        except Exception as exc:
            raise SpoolerUnavailable(f"The uWSGI spooler refused the task: {exc}") from exc
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        return path or ""

    def node(self) -> str:
        return node_id(spool_dir())


def handle_spool_entry(env: dict) -> int:
    """Run the task named by a spool entry; return ``uwsgi.SPOOL_OK``, always.

    ``env`` is the decoded spool dict (str keys and values, as
    ``uwsgidecorators`` passes it). Every exception, ``SystemExit`` included,
    is caught and logged: raising would make uWSGI re-run the file for ever.
    """
    ok = getattr(uwsgi, "SPOOL_OK", -2)
    try:
        from .. import runner

        task_id = int(env.get("task", 0))
        runner.execute(task_id, env.get("token", ""), env.get("trigger", "schedule"))
    except BaseException:  # noqa: BLE001 - see the docstring
        logger.exception("taskmanager: spool entry %r failed outside the run", env)
    return ok


def register_handler() -> bool:
    """Register the spool handler with ``uwsgidecorators`` when a spooler is configured.

    Return whether it was registered. Outside uWSGI, or without a spooler,
    do nothing (``uwsgidecorators`` raises there).
    """
    if not spooler_configured():
        return False
    import uwsgidecorators

    def taskmanager_run(env):
        return handle_spool_entry(env)

    uwsgidecorators.spooler_functions[HANDLER_NAME] = taskmanager_run

    @uwsgidecorators.postfork
    def taskmanager_spooler_started():
        # Runs in every worker and spooler after fork; only spoolers recover.
        if uwsgi.i_am_the_spooler():
            from .. import runner
            from ..recovery import on_spooler_start

            record_heartbeat()
            on_spooler_start(runner.current_report_id)

    register_recovery_timer()
    return True


def register_recovery_timer() -> int | None:
    """Make an idle spooler process run the periodic recovery every RECOVERY_SECONDS.

    A uWSGI timer signal targeted at "spooler": one idle spooler process
    handles each tick (ticks wait while all are busy). It closes runs whose
    supervisor died on another host (their heartbeat goes stale) without
    waiting for a spooler restart. Only the master registers it (with
    ``lazy-apps`` the app loads in every worker, which would add one timer
    each). Return the uWSGI signal number used, or None.
    """
    from ..conf import app_settings

    seconds = app_settings.RECOVERY_SECONDS
    if not seconds or uwsgi.masterpid() != os.getpid():
        return None
    import uwsgidecorators

    def taskmanager_recovery_tick(signum):
        try:
            from .. import runner
            from ..recovery import on_timer

            record_heartbeat()
            on_timer(runner.current_report_id)
        except BaseException:  # noqa: BLE001 - a signal handler must not kill the spooler
            logger.exception("taskmanager: periodic recovery failed")

    try:
        timer = uwsgidecorators.timer(max(1, int(seconds)), target="spooler")
        timer(taskmanager_recovery_tick)
    except Exception:  # noqa: BLE001 - no free signal: recovery still runs at spooler start
        logger.exception("taskmanager: could not register the periodic recovery timer")
        return None
    return timer.num


def record_heartbeat() -> None:
    """Record that this node's spooler is alive (SpoolerHeartbeat row, UTC now)."""
    from django.db import close_old_connections
    from django.utils import timezone

    from ..models import SpoolerHeartbeat

    try:
        close_old_connections()
        SpoolerHeartbeat.objects.update_or_create(
            node=UwsgiBackend().node(), defaults={"last_seen": timezone.now()}
        )
    except Exception:  # noqa: BLE001 - a heartbeat must never break the spooler
        logger.exception("taskmanager: could not record the spooler heartbeat")

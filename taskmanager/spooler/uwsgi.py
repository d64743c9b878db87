"""The uWSGI spooler backend: its enqueue side (what a web process does to queue a run).

A spool entry is a uWSGI spool file holding only byte strings: the handler
name used by ``uwsgidecorators`` (so projects that also use its ``@spool``
functions keep working), the task id, the run token and the trigger. Nothing
is pickled (:func:`taskmanager.spoolfiles.make_entry`). See
``docs/deploy.rst`` for the uWSGI options this relies on.

What runs inside a spooler process (the handler, recovery at start, the
heartbeat and the recovery timer) is in :mod:`taskmanager.spooler.uwsgi_handler`.
"""

import os
import signal
from datetime import datetime

# HANDLER_NAME and the uwsgi_runtime helpers are also re-exported here under
# their old names (tests/test_end_to_end.py and bench/benchapp/floor.py import
# them from here).
from .. import dbclock
from ..conf import app_settings
from ..spoolfiles import HANDLER_NAME, make_entry, node_id
from ..uwsgi_runtime import spool_dir, spool_target_configured, spooler_configured, uwsgi
from . import BaseBackend, SpoolerUnavailable

__all__ = [
    "HANDLER_NAME",
    "UwsgiBackend",
    "spool_dir",
    "spool_target_configured",
    "spooler_configured",
]


class UwsgiBackend(BaseBackend):
    reports_heartbeats = True

    def web_only(self) -> bool:
        """``TASKMANAGER_WEB_ONLY``, or else: under uWSGI with neither 'spooler' nor 'spooler-external'."""
        if app_settings.WEB_ONLY is not None:
            return bool(app_settings.WEB_ONLY)
        return uwsgi is not None and not spool_target_configured()

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
        # Identifiers only; "at" rounded up to whole seconds (see make_entry),
        # on this machine's clock: the spooler compares it with that clock,
        # while "at" is on the database's (taskmanager.dbclock).
        entry = make_entry(task_id, token, trigger, dbclock.to_local(at) if at is not None else None)
        try:
            path = uwsgi.spool(entry)
        except Exception as exc:
            raise SpoolerUnavailable(f"The uWSGI spooler refused the task: {exc}") from exc
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        return path or ""

    def wake(self) -> None:
        """Send SIGUSR1 to every spooler process: each scans the spool directory again once it is free.

        ``uwsgi.spool()`` wakes only the spooler processes that are idle. One
        that is running an entry scans the directory again when its current
        scan ends only if it was woken meanwhile; its current scan never sees
        the files written after it began (uWSGI reads the directory once per
        scan), so without this a burst of entries spooled while every spooler
        is busy waits for the next ``spooler-frequency`` tick (1 to 30 s).
        Each signal adds one scan at most (uWSGI counts them), so this is
        sent once per batch, not once per entry.
        """
        if uwsgi is None:
            return
        try:
            pids = uwsgi.spooler_pids()
        except Exception:  # noqa: BLE001 - no spooler here (spooler-external): the scan tick only
            return
        for pid in pids:
            if pid > 0 and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGUSR1)
                except OSError:
                    pass  # respawned meanwhile: the new one scans at its start

    def node(self) -> str:
        return node_id(spool_dir())

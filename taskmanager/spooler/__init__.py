"""Spooler backends: how a run is handed to the process that executes it.

A backend puts one *spool entry* (a task id, a run token and a trigger, all
plain identifiers) where a spooler will find it, optionally not before a given
time. Everything else about the run lives in the database.

Backends:

* ``taskmanager.spooler.uwsgi.UwsgiBackend`` (the default): the uWSGI spooler.
* ``taskmanager.spooler.immediate.ImmediateBackend``: runs the task inside the
  calling process at once; meant for tests only.
"""

from datetime import datetime

from django.utils.module_loading import import_string

from ..conf import app_settings


class SpoolerUnavailable(Exception):
    """Raised by ``spool()`` when no spooler can take the entry; the message says why."""


class BaseBackend:
    #: Whether entries with a future ``at`` are honoured (else they run at once).
    supports_at = True

    def spool(self, task_id: int, token: str, trigger: str, at: datetime | None = None) -> str:
        """Queue a run of ``task_id`` carrying ``token``, not before ``at`` (aware).

        Return an identifier of the spool entry (the spool file's path for
        uWSGI). Raise SpoolerUnavailable when no spooler can take it.
        """
        raise NotImplementedError

    def ensure_available(self) -> None:
        """Raise SpoolerUnavailable when ``spool()`` would certainly fail here."""

    def node(self) -> str:
        """Return the identity of the node holding the entries (host:spool dir)."""
        raise NotImplementedError

    def check(self) -> list:
        """Return system check messages about this backend's configuration."""
        return []


def get_backend() -> BaseBackend:
    """Return an instance of the configured ``TASKMANAGER_BACKEND``."""
    return import_string(app_settings.BACKEND)()

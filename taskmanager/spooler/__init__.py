"""Spooler backends: how a run is handed to the process that executes it.

A backend puts one *spool entry* (a task id, a run token and a trigger, all
plain identifiers) where a spooler will find it, optionally not before a given
time. Everything else about the run lives in the database.

Backends:

* ``taskmanager.spooler.uwsgi.UwsgiBackend`` (the default): the uWSGI spooler.
* ``taskmanager.spooler.immediate.ImmediateBackend``: runs the task inside the
  calling process at once; meant for tests only.

This module is the contract between the app and a backend (:class:`BaseBackend`)
and how the configured one is found (:func:`get_backend`); it imports no
backend, no ORM and nothing of the run path.
"""

import abc
from datetime import datetime

from django.utils.module_loading import import_string

from ..conf import app_settings


class SpoolerUnavailable(Exception):
    """Raised by ``spool()`` when no spooler can take the entry; the message says why."""


class BaseBackend(abc.ABC):
    """What a backend provides: :meth:`spool` and :meth:`node` (required), the rest optional.

    A subclass that lacks a required method cannot be instantiated; Python's
    error names the missing method. Code asks a backend what it can do
    through the attributes below, never by testing its class.
    """

    #: Whether entries with a future ``at`` are honoured (else they run at once).
    supports_at = True
    #: Whether the spoolers of this backend record a ``SpoolerHeartbeat`` under
    #: :meth:`node` (at their start and on the recovery timer) and recover their
    #: node's lost entries at start. The admin's "no spooler alive" banner and
    #: the spooler start-up hooks act only for such a backend.
    reports_heartbeats = False

    @abc.abstractmethod
    def spool(self, task_id: int, token: str, trigger: str, at: datetime | None = None) -> str:
        """Queue a run of ``task_id`` carrying ``token``, not before ``at`` (aware).

        Return an identifier of the spool entry (the spool file's path for
        uWSGI). Raise SpoolerUnavailable when no spooler can take it.
        """

    @abc.abstractmethod
    def node(self) -> str:
        """Return the identity of the node holding the entries (host:spool dir)."""

    def web_only(self) -> bool:
        """Whether this process hands no entry to a spooler: Start and Run now only record the row.

        A spooler node's periodic pass then takes the row (the database is
        the queue of record, ``recovery/takeover.py``). ``TASKMANAGER_WEB_ONLY``
        when set; a backend may detect it otherwise.
        """
        return bool(app_settings.WEB_ONLY)

    def wake(self) -> None:  # noqa: B027 - optional: by default the spoolers need no telling
        """Tell the spoolers that entries due now were just spooled; called once after a batch of them."""

    def ensure_available(self) -> None:  # noqa: B027 - optional: by default nothing is known to fail
        """Raise SpoolerUnavailable when ``spool()`` would certainly fail here."""

    def check(self) -> list:
        """Return system check messages about this backend's configuration."""
        return []


def get_backend() -> BaseBackend:
    """Return an instance of the configured ``TASKMANAGER_BACKEND``."""
    return import_string(app_settings.BACKEND)()

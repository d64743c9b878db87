"""Holder-side fencing: how long a supervisor may run its command without renewing its heartbeat.

A run's supervisor renews the run's heartbeat in the database every
``HEARTBEAT_SECONDS``; other nodes take the run for interrupted when the
heartbeat is older than the timeout. A supervisor cut from the database
(a network partition, a database down for long) cannot renew it, and its
command would still run when another node closes the run and the next run
starts. So the rule has two sides around one margin (issue 15):

* the holder kills its command once it could not renew the heartbeat for
  ``HEARTBEAT_TIMEOUT - FENCE_MARGIN`` seconds (the margin is a sixth of
  the timeout unless set), on its own monotonic clock
  (:func:`holder_expired`);
* observers wait ``HEARTBEAT_TIMEOUT + FENCE_MARGIN`` seconds, on the
  database's clock (:func:`observer_wait`).

The holder counts from the moment it *sent* its last renewal that
succeeded, which is before the time the database wrote on it: the two
sides are ``2 * FENCE_MARGIN`` apart, room for the kill and for clock rates.
A larger margin makes the holder give up sooner on a database that is
restarting (a restart shorter than ``HEARTBEAT_TIMEOUT - FENCE_MARGIN``
loses nothing). A pure module: no ORM, only the settings.
"""

from __future__ import annotations

import time

from .conf import app_settings

#: The margin when ``FENCE_MARGIN`` is None: this fraction of ``HEARTBEAT_TIMEOUT``.
DEFAULT_MARGIN_FRACTION = 1 / 6


def margin(timeout: float, configured: float | None) -> float:
    """Return the margin in seconds: ``configured``, or a sixth of ``timeout`` when it is None."""
    return float(timeout) * DEFAULT_MARGIN_FRACTION if configured is None else max(float(configured), 0.0)


def limits() -> tuple[float, float]:
    """Return ``(HEARTBEAT_TIMEOUT, margin)`` as configured now."""
    timeout = float(app_settings.HEARTBEAT_TIMEOUT)
    return timeout, margin(timeout, app_settings.FENCE_MARGIN)


def holder_limit(timeout: float, margin_seconds: float | None) -> float:
    """Seconds a supervisor may go without renewing its heartbeat before it kills its command."""
    return max(float(timeout) - margin(timeout, margin_seconds), 0.0)


def observer_wait(timeout: float, margin_seconds: float | None) -> float:
    """Seconds a heartbeat must be old before another process takes the run for interrupted."""
    return float(timeout) + margin(timeout, margin_seconds)


def holder_expired(renewed_at: float, now: float, timeout: float, margin_seconds: float | None) -> bool:
    """Tell whether a supervisor whose last renewal was sent at ``renewed_at`` must kill its command.

    ``renewed_at`` and ``now`` are ``time.monotonic()`` readings of the supervisor.
    """
    return now - renewed_at >= holder_limit(timeout, margin_seconds)


def holder_message(seconds: float, timeout: float, margin_seconds: float | None) -> str:
    """The log line of a supervisor that killed its command: why, with the numbers."""
    return (
        "Fencing: the run's heartbeat could not be written for %g seconds (TASKMANAGER_HEARTBEAT_TIMEOUT "
        "- TASKMANAGER_FENCE_MARGIN = %g): the command was killed, as other nodes may now take the run "
        "for interrupted." % (round(seconds, 1), holder_limit(timeout, margin_seconds))
    )


class Lease:
    """The holder's side for one run: when the last heartbeat that was written had been sent.

    ``sent`` is the ``time.monotonic()`` of the first one (the claim's).
    On SQLite (``vendor``) it never expires: every process shares one
    machine and its file, nobody fences from elsewhere, and a command's long
    write transaction, which holds up the heartbeat, must not kill its run.
    """

    def __init__(self, sent: float | None = None, vendor: str = ""):
        self.renewed_at = time.monotonic() if sent is None else sent
        self.active = vendor != "sqlite"

    def renew(self, sent: float) -> None:
        """Record a heartbeat written, sent at ``sent`` (monotonic)."""
        self.renewed_at = max(self.renewed_at, sent)

    def expired(self, now: float) -> bool:
        """Tell whether the command must be killed (:func:`holder_expired`, the settings now)."""
        return self.active and holder_expired(self.renewed_at, now, *limits())

    def message(self, now: float) -> str:
        """The log line of the kill (:func:`holder_message`)."""
        return holder_message(now - self.renewed_at, *limits())

"""A backend that runs the task in the calling process, at once. Tests only."""

import socket
from datetime import datetime

from .. import dbclock, runner
from . import BaseBackend


class ImmediateBackend(BaseBackend):
    """Run each entry that is due now synchronously; drop entries with a future ``at``.

    Never use it in production: the command runs inside the web request, and
    a later run of a periodic task never happens.
    """

    supports_at = False

    def spool(self, task_id: int, token: str, trigger: str, at: datetime | None = None) -> str:
        if at is not None and at > dbclock.now():
            return "immediate:dropped"
        runner.execute(task_id, token, trigger)
        return "immediate"

    def node(self) -> str:
        return f"{socket.gethostname()}:immediate"

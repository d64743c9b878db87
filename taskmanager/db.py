"""The database the run path reads: the write database of the task model, whatever the routers say.

With ``DATABASE_ROUTERS`` sending reads to a replica, a replica that lags
would show a claim the old run token (and the spool entry would be consumed
unrun as stale), a supervisor no stop request, recovery a run long over
(issue 15). So the run path (a spooler's entries, its heartbeat and
recovery passes, the admin's Start/Stop/Run now) runs :func:`pinned`: while
pinned, :class:`PinnedReads`, placed first among the project's routers by
:func:`install`, sends every read to the model's write database.
:func:`write_db` names it for ``transaction.atomic(using=...)``.
"""

import contextlib
import contextvars
import functools

from django.apps import apps
from django.conf import settings
from django.db import router

_pinned = contextvars.ContextVar("taskmanager_pinned_reads", default=False)


def write_db() -> str:
    """Return the alias of the task model's write database (``router.db_for_write(Task)``)."""
    return router.db_for_write(apps.get_model("taskmanager", "Task"))


@contextlib.contextmanager
def pinned():
    """Send every read of this thread to the write database while the block runs."""
    token = _pinned.set(True)
    try:
        yield
    finally:
        _pinned.reset(token)


def pin(func):
    """Decorate ``func`` to run :func:`pinned`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with pinned():
            return func(*args, **kwargs)

    return wrapper


class PinnedReads:
    """A router: while :func:`pinned`, a read goes where the model's writes go; otherwise no opinion."""

    def db_for_read(self, model, **hints):
        if _pinned.get():
            return router.db_for_write(model, **hints)
        return None


def install() -> None:
    """Put :class:`PinnedReads` before the project's routers (when it has any); idempotent."""
    if settings.DATABASE_ROUTERS and not any(isinstance(r, PinnedReads) for r in router.routers):
        router.routers.insert(0, PinnedReads())

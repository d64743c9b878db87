"""A busy database as an answer a person can act on: HTTP 503, never a 500.

When another process holds a write lock longer than the busy timeout
(SQLite's "database is locked"), or a lock wait ends in a timeout or a
deadlock (MySQL/MariaDB 1205/1213, PostgreSQL 55P03/40P01), the query fails
with an ``OperationalError``. Every view of the app's admin pages is wrapped
(:class:`BusyDatabaseMixin`): such a failure answers a page saying that the
database is busy and nothing was done, with HTTP 503 and ``Retry-After``, and
rolls back what the request had begun, so no action is reported done unless
it committed.
"""

from functools import wraps

from django.db import OperationalError, transaction
from django.template.response import TemplateResponse
from django.urls import URLPattern
from django.utils.translation import gettext as _

#: Words of the error messages of a busy database (SQLite, and the drivers'
#: texts where no error code is available).
BUSY_TEXTS = ("database is locked", "database table is locked", "lock wait timeout", "deadlock")
#: Error codes of a busy database: MySQL/MariaDB (args[0]) and PostgreSQL (SQLSTATE).
BUSY_CODES = {1205, 1213, "55P03", "40P01"}
#: Seconds a browser or a client is told to wait before trying again.
RETRY_AFTER = 5


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is busy (a lock held by someone else), not broken."""
    if not isinstance(exc, OperationalError):
        return False
    if BUSY_CODES & _codes(exc):
        return True
    text = str(exc).lower()
    return any(words in text for words in BUSY_TEXTS)


#: Error codes of a deadlock: the database rolled back its victim's whole
#: transaction, which can simply run again (MySQL/MariaDB 1213, PostgreSQL 40P01).
DEADLOCK_CODES = {1213, "40P01"}
#: How many times an action is tried when it is a deadlock's victim.
DEADLOCK_ATTEMPTS = 3


def _codes(exc: BaseException) -> set:
    cause = exc.__cause__ or exc
    return {getattr(cause, "sqlstate", None), *(cause.args[:1] if getattr(cause, "args", None) else ())}


def is_deadlock(exc: BaseException) -> bool:
    """Whether ``exc`` is a deadlock whose victim was this transaction (rolled back whole)."""
    return isinstance(exc, OperationalError) and bool(DEADLOCK_CODES & _codes(exc))


def retry_deadlocks(action):
    """Run ``action`` again (up to :data:`DEADLOCK_ATTEMPTS` times) when a deadlock chose it as victim.

    Two single-row updates of one task can deadlock on InnoDB when they reach
    the row through different indexes (the primary key, the status index):
    the database rolls one back, and trying again is the documented answer.
    Only outside an enclosing transaction (``ATOMIC_REQUESTS``): there the
    whole request was rolled back, and the 503 page says so.
    """

    @wraps(action)
    def wrapped(*args, **kwargs):
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return action(*args, **kwargs)
            except OperationalError as exc:
                nested = transaction.get_connection().in_atomic_block
                if attempt == DEADLOCK_ATTEMPTS or nested or not is_deadlock(exc):
                    raise

    return wrapped


def busy_as_503(view):
    """Wrap ``view`` so that a busy database answers the 503 page."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except OperationalError as exc:
            if not is_busy(exc):
                raise
            if transaction.get_connection().in_atomic_block:
                transaction.set_rollback(True)  # ATOMIC_REQUESTS: nothing of this request commits
            response = TemplateResponse(
                request,
                "admin/taskmanager/busy.html",
                {"title": _("The database is busy"), "retry_after": RETRY_AFTER},
                status=503,
            )
            response["Retry-After"] = str(RETRY_AFTER)
            return response

    return wrapped


class BusyDatabaseMixin:
    """ModelAdmin mixin: every view it registers answers a busy database with the 503 page."""

    @property
    def urls(self):
        # ModelAdmin.urls is what the admin site includes: wrapping here
        # covers the views a subclass's get_urls() adds as well.
        patterns = self.get_urls()
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                pattern.callback = busy_as_503(pattern.callback)
        return patterns

"""The database server's clock: the one "now" of every process, whatever machine it runs on.

A time that one process writes and another compares (a run's heartbeat, a
node's last sign of life, a run's start and end, a task's next run, the "not
before" of a spool entry) is on the database's clock: machines' clocks
differ, the database is one (issue 13, item 11: a node whose clock was 90 s
ahead closed the healthy runs of the others as interrupted). This machine's
clock stays for what one process alone compares: monotonic timers, the stamps
of log lines, a spool file's age.

* :class:`DbNow`: the database's now inside SQL (heartbeat writes, staleness
  tests), no extra query.
* :func:`measure`: read the database's clock (one query); keep and return the
  offset. A spooler measures it at each heartbeat (``record_heartbeat``).
* :func:`offset`: the database's clock minus this machine's, in seconds:
  the last measure, taken again when older than ``HEARTBEAT_SECONDS``.
* :func:`now`: the database's now, as this machine's clock plus the offset.
* :func:`to_local`: a time on the database's clock as this machine's clock
  reads it then, to the second (uWSGI's ``at``, which the spooler compares
  with its clock);
  :func:`from_local` the reverse, with the last measure and no query (a
  command's progress stamp).

SQLite has no server: its clock is the clock of the process that queries,
and the offset is 0.
"""

import time
from datetime import datetime, timedelta

from django.db import connections
from django.db.models.functions import Now
from django.db.models.sql.query import Query
from django.utils import timezone

from .conf import app_settings
from .db import write_db


class DbNow(Now):
    """The database's now in SQL, in UTC on every backend.

    Django's ``Now`` is MySQL's ``CURRENT_TIMESTAMP(6)``, in the session's
    time zone (the server's by default), while Django stores and reads
    naive UTC there: ``UTC_TIMESTAMP(6)`` is right whatever the server's zone.
    """

    def as_mysql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


# The last measure of this process: (offset in seconds, time.monotonic() it was taken).
_last: list = []


def measure(using: str | None = None) -> float:
    """Read the database's clock (one query); keep and return the offset, in seconds.

    The offset is the database's time minus this machine's at the middle of
    the query's round trip. On SQLite it is 0 without a query: the database's
    clock is this process's. ``using``: the write database (:mod:`taskmanager.db`).
    """
    using = using or write_db()
    connection = connections[using]
    if connection.vendor == "sqlite":
        _last[:] = [0.0, time.monotonic()]
        return 0.0
    expression = DbNow()
    compiler = connection.ops.compiler("SQLCompiler")(Query(None), connection, using)
    sql, params = compiler.compile(expression)
    with connection.cursor() as cursor:
        before = time.time()
        cursor.execute("SELECT %s%s" % (sql, connection.features.bare_select_suffix), params)
        value = cursor.fetchone()[0]
        after = time.time()
    for converter in connection.ops.get_db_converters(expression):
        value = converter(value, expression, connection)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_fixed_timezone(0))
    seconds = value.timestamp() - (before + after) / 2
    _last[:] = [seconds, time.monotonic()]
    return seconds


def offset(refresh: bool = True) -> float:
    """The database's clock minus this machine's, in seconds.

    The last measure of this process, measured again when there is none or
    it is older than ``HEARTBEAT_SECONDS`` (one query), unless ``refresh`` is
    false: then 0 when never measured.
    """
    if not refresh:
        return _last[0] if _last else 0.0
    if not _last or time.monotonic() - _last[1] > max(float(app_settings.HEARTBEAT_SECONDS), 1.0):
        return measure()
    return _last[0]


def now() -> datetime:
    """The database's now (aware UTC): this machine's clock plus :func:`offset`."""
    return timezone.now() + timedelta(seconds=offset())


def to_local(at: datetime) -> datetime:
    """The time this machine's clock reads when the database's clock reads ``at``, to the second.

    For uWSGI's ``at``, which has whole seconds: an offset within the
    measure's noise (a fraction of a second) must not push an entry due on a
    whole second to the next one. The claim's guard, on the database's
    clock, puts back an entry that comes due early by the fraction left.
    """
    return at - timedelta(seconds=round(offset()))


def from_local(at: datetime) -> datetime:
    """The database's time when this machine's clock read ``at`` (the last measure; no query)."""
    return at + timedelta(seconds=offset(refresh=False))

"""Storage of run logs: batched inserts and keyset queries over LogLine rows.

A run's log is one :class:`~taskmanager.models.LogLine` row per line, keyed by
``(report, seq)`` where ``seq`` counts 1, 2, 3... within the report. Every
read here walks an index from a known ``seq`` and stops after a fixed number
of rows, so the first page, the last page and a page in the middle of a
1,000,000-line log all cost the same few queries; nothing counts or
offsets through the log. The level filters use ``severity`` (see
:func:`taskmanager.logcapture.severity`) and the ``(report, severity, seq)``
index: ERROR is one index range, WARNING (warnings and above) two, merged
here. A text search walks the log in ``seq`` order from the cursor until it
has a page of matches, so a rare word in a long log reads up to the whole log.

Writes (:func:`insert_rows`) skip the ORM's per-object work: the supervisor
hands over plain tuples and they go in with multi-row INSERTs, or COPY on
PostgreSQL.
"""

from __future__ import annotations

import functools
import heapq
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

from django.db import connections
from django.db.models.functions import Left

from .logcapture import level_name
from .models import LogLine

#: Field order of the tuples given to insert_rows() (``report`` as its pk).
FIELDS = ("report", "seq", "level", "severity", "stream", "timestamp", "text")

#: Level filters of the viewer: name -> severities shown (None: every line).
FILTERS = {"ALL": None, "WARNING": (1, 2), "ERROR": (2,)}

# Most rows per INSERT statement (each row has len(FIELDS) parameters).
_ROWS_PER_INSERT = 1000


class Stamps:
    """Turn unix times in integer microseconds into values for the timestamp column.

    Backends that store datetimes as text (SQLite, MySQL/MariaDB) get the
    string the backend itself makes for the whole second, with the
    microseconds appended, so a million lines do not each go through a
    datetime object and the backend's conversion; PostgreSQL gets aware
    datetimes (its driver converts them in C).
    """

    def __init__(self, using: str = "default"):
        self.ops = connections[using].ops
        self._second = None
        self._base = None
        probe = self.ops.adapt_datetimefield_value(datetime(2000, 1, 1, tzinfo=UTC))
        self.textual = isinstance(probe, str) and len(probe) == 19

    def __call__(self, us: int):
        second, micro = divmod(us, 1_000_000)
        if second != self._second:
            self._second = second
            self._base = datetime.fromtimestamp(second, UTC)
            if self.textual:
                self._base = self.ops.adapt_datetimefield_value(self._base)
        if self.textual:
            return "%s.%06d" % (self._base, micro)
        return self._base.replace(microsecond=micro)


def insert_rows(rows: list[tuple], using: str = "default") -> None:
    """Insert LogLine rows given as tuples in FIELDS order.

    ``timestamp`` values must come from :class:`Stamps`. Runs in the
    caller's transaction. The statement size is bounded by the caller's
    batch (TASKMANAGER_LOG_BATCH_BYTES), which keeps it under MySQL's
    ``max_allowed_packet``.
    """
    if not rows:
        return
    connection = connections[using]
    table = connection.ops.quote_name(LogLine._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(LogLine._meta.get_field(name).column) for name in FIELDS)
    # wrap_database_errors: the raw driver calls below raise Django's
    # DatabaseError classes like the ORM does (the runner retries on those
    # when the server drops the connection).
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = getattr(cursor, "cursor", None)
        if connection.vendor == "postgresql" and hasattr(raw, "copy"):
            # psycopg 3: COPY is several times faster than any INSERT form,
            # and its binary format costs the client a third of the text one.
            types = [LogLine._meta.get_field(name).db_type(connection).split("(")[0] for name in FIELDS]
            with raw.copy("COPY %s (%s) FROM STDIN (FORMAT BINARY)" % (table, columns)) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            return
        per_statement = min(_ROWS_PER_INSERT, _max_params(connection) // len(FIELDS))
        execute = cursor.execute
        placeholder = "%s"
        if connection.vendor == "sqlite" and isinstance(raw, sqlite3.Cursor):
            # Django's SQLite cursor rewrites every %s of a statement into ?
            # with a regular expression, a third of the insert time for
            # 1000-row statements: write ? directly and call sqlite3 itself.
            execute = functools.partial(sqlite3.Cursor.execute, raw)
            placeholder = "?"
        one = "(%s)" % ", ".join([placeholder] * len(FIELDS))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = "INSERT INTO %s (%s) VALUES %s" % (table, columns, ", ".join([one] * len(chunk)))
            execute(sql, [value for row in chunk for value in row])


def _max_params(connection) -> int:
    limit = connection.features.max_query_params or 65535
    if connection.vendor == "sqlite":
        # Django assumes SQLite's old default of 999; ask the library (3.32+
        # allows 32766), as fewer, larger statements insert faster.
        connection.ensure_connection()
        getlimit = getattr(connection.connection, "getlimit", None)  # Python 3.11+
        if getlimit is not None:
            limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(limit, len(FIELDS))


# -- reading ----------------------------------------------------------------------
class Page:
    """One page of a log: ``rows`` in ``seq`` order and where more lines are.

    ``rows`` are dicts with ``seq``, ``level``, ``stream``, ``timestamp``
    (aware datetime) and ``text`` (cut to ``text_chars`` characters plus one,
    so that a caller can tell a cut line). ``has_before`` / ``has_after``
    say whether matching lines exist before the first row / after the last.
    """

    def __init__(self, rows: list[dict], has_before: bool, has_after: bool):
        self.rows = rows
        self.has_before = has_before
        self.has_after = has_after

    @property
    def first_seq(self) -> int | None:
        return self.rows[0]["seq"] if self.rows else None

    @property
    def last_seq(self) -> int | None:
        return self.rows[-1]["seq"] if self.rows else None


def _filtered(report_id: int, severities, query: str):
    """Return (all matching lines, one queryset per index range to read in seq order)."""
    base = LogLine.objects.filter(report_id=report_id)
    if query:
        base = base.filter(text__icontains=query)
    if severities is None:
        return base, [base]
    return base.filter(severity__in=severities), [base.filter(severity=s) for s in severities]


def read_page(
    report_id: int,
    level: str = "ALL",
    query: str = "",
    after: int | None = None,
    before: int | None = None,
    last: bool = False,
    size: int = 500,
    text_chars: int = 5000,
) -> Page:
    """Return the page of at most ``size`` matching lines.

    The lines with ``seq`` > ``after``, or else < ``before``, or else the
    last ones (``last``), or else the first ones. ``level`` is a key of
    FILTERS, ``query`` a case-insensitive substring ("" for none).

    Without ``query``: one query per index range (1 or 2) for the page, then
    one EXISTS for the other side; the same number at any position in the
    log. With ``query``: the log is read in windows of growing length
    (SEARCH_WINDOW lines, doubling up to 64 times that) from the position
    until a page is found or the log ends, so that every query walks the
    ``seq`` index (a planner that guesses few matches would otherwise sort
    the whole log); on the side that was not searched, ``has_before`` /
    ``has_after`` say whether the page was reached from there.
    """
    severities = FILTERS.get(level, None)
    matching, ranges = _filtered(report_id, severities, query)
    backwards = before is not None or (last and after is None)
    bound = after if after is not None else before
    if query:
        return _search(report_id, ranges, backwards, bound, size, text_chars)
    rows, more = _fetch(ranges, backwards, bound, None, size, text_chars)
    if not rows:
        return Page(rows, has_before=False, has_after=False)
    if backwards:
        has_before = more
        has_after = matching.filter(seq__gt=rows[-1]["seq"]).exists()
    else:
        has_after = more
        has_before = matching.filter(seq__lt=rows[0]["seq"]).exists()
    return Page(rows, has_before=has_before, has_after=has_after)


#: Lines read by the first query of a text search (later ones read more).
SEARCH_WINDOW = 5000

_FIELDS = ("seq", "level", "stream", "timestamp", "short")


def _fetch(ranges, backwards: bool, bound: int | None, limit: int | None, size: int, text_chars: int):
    """Read up to ``size`` + 1 rows past ``bound`` (and before ``limit``), merged by seq.

    Return (rows in seq order, at most ``size``; whether more matched).
    """
    parts = []
    for qs in ranges:
        qs = qs.annotate(short=Left("text", text_chars + 1))
        if backwards:
            if bound is not None:
                qs = qs.filter(seq__lt=bound)
            if limit is not None:
                qs = qs.filter(seq__gte=limit)
            parts.append(list(qs.order_by("-seq").values(*_FIELDS)[: size + 1]))
        else:
            if bound is not None:
                qs = qs.filter(seq__gt=bound)
            if limit is not None:
                qs = qs.filter(seq__lte=limit)
            parts.append(list(qs.order_by("seq").values(*_FIELDS)[: size + 1]))
    if len(parts) == 1:
        merged = parts[0]
    else:
        merged = list(heapq.merge(*parts, key=lambda r: r["seq"], reverse=backwards))
    more = len(merged) > size
    rows = merged[:size]
    if backwards:
        rows.reverse()
    for row in rows:
        row["text"] = row.pop("short")
    return rows, more


def _search(report_id: int, ranges, backwards: bool, bound: int | None, size: int, text_chars: int) -> Page:
    top = (
        LogLine.objects.filter(report_id=report_id).order_by("-seq").values_list("seq", flat=True).first()
        or 0
    )
    found: list[dict] = []
    window = SEARCH_WINDOW
    more = False
    if backwards:
        high = top + 1 if bound is None else min(bound, top + 1)
        while high > 1 and len(found) <= size:
            low = max(high - window, 1)
            rows, more = _fetch(ranges, True, high, low, size - len(found), text_chars)
            found = rows + found
            high = low
            window = min(window * 2, SEARCH_WINDOW * 64)
            if more:
                break
        # Matches after: those of the page this one was reached from.
        return Page(found, has_before=more, has_after=bound is not None and bound <= top)
    low = 0 if bound is None else bound
    while low < top and len(found) <= size:
        high = low + window
        rows, more = _fetch(ranges, False, low, high, size - len(found), text_chars)
        found += rows
        low = high
        window = min(window * 2, SEARCH_WINDOW * 64)
        if more:
            break
    return Page(found, has_before=bound is not None and bound > 0, has_after=more)


def iter_lines(report_id: int, chunk: int = 2000) -> Iterator[tuple[int, datetime, int, str, str]]:
    """Yield every line of a report as (seq, timestamp, level, stream, text), in order.

    Reads in keyset chunks of at most ``chunk`` rows (fewer while lines are
    long), so no query stays open between chunks and memory stays bounded on
    every backend (MySQL drivers would otherwise load a whole result set).
    """
    last = 0
    size = chunk
    while True:
        rows = list(
            LogLine.objects.filter(report_id=report_id, seq__gt=last)
            .order_by("seq")
            .values_list("seq", "timestamp", "level", "stream", "text")[:size]
        )
        if not rows:
            return
        yield from rows
        last = rows[-1][0]
        # Aim at about 8 MB of text per chunk.
        chars = sum(len(row[4]) for row in rows) or 1
        size = max(1, min(chunk, int(len(rows) * 8_000_000 / chars)))


#: What starts each further line of a multi-line entry in the download. The
#: product's own lines start with a date (the header with "Log of"), so no
#: text a command writes can pass for one of them (issue 14).
CONTINUATION = "  | "
#: Every line break of str.splitlines() (and of text viewers): \r\n, \n, \r,
#: \v, \f, the file/group/record separators, NEL, LINE and PARAGRAPH SEPARATOR.
_BREAKS_RE = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def mark_continuations(text: str) -> str:
    """Return ``text`` with each line break made a newline followed by :data:`CONTINUATION`."""
    return _BREAKS_RE.sub("\n" + CONTINUATION, text)


def format_line(timestamp: datetime, level: int, stream: str, text: str) -> str:
    """Return one entry of the downloadable text log (``timestamp`` already local).

    An entry spanning several lines (a traceback, a message with a newline)
    gets :data:`CONTINUATION` before each further line.
    """
    if _BREAKS_RE.search(text):
        text = mark_continuations(text)
    # isoformat() is several times faster than strftime() (a million calls).
    return "%s %-8s %-11s %s\n" % (
        timestamp.isoformat(" ", "microseconds")[:26],
        level_name(level),
        stream,
        text,
    )

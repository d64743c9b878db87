"""Progress reporting for command authors.

A management command run as a task can say how far it got; the admin then
shows a progress bar with the percentage and an estimated time of arrival
(ETA), in the task list and on the task page, refreshed while the run goes on::

    from django.core.management.base import BaseCommand
    from taskmanager.progress import report_progress, track

    class Command(BaseCommand):
        def handle(self, *args, **options):
            rows = load_rows()
            for done, row in enumerate(rows, 1):
                process(row)
                report_progress(done, len(rows), message="row %s" % row.pk)

            # or, equivalently, let track() count for you:
            for row in track(load_rows(), message="importing"):
                process(row)

Outside a task run (``manage.py`` in a shell, tests calling
``call_command``) both are harmless no-ops, so a command can use them
unconditionally.

How it travels: the command runs in a child process forked by the
supervising spooler process (see :mod:`taskmanager.runner`). The child sends
each update as a record on its record pipe under the stream name
:data:`PROGRESS_STREAM`; the supervisor keeps only the latest one and writes
it to the run's :class:`~taskmanager.models.Report` (``progress_done``,
``progress_total``, ``progress_message``, ``progress_at``) with its next log
batch, i.e. at most every ``TASKMANAGER_LOG_FLUSH_SECONDS``. Updates closer
than :data:`MIN_INTERVAL` seconds to the previous one are dropped in the
child (except the final ``done == total``), so calling this in a tight loop
costs little.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["MIN_INTERVAL", "PROGRESS_STREAM", "report_progress", "track"]

#: Stream name of progress records on the record pipe (never a log line).
PROGRESS_STREAM = "_progress"
#: Seconds: updates sent more often than this are dropped (the last one wins).
MIN_INTERVAL = 0.1
#: Longest message kept, in characters (the Report field's length).
MAX_MESSAGE = 200

_writer = None
_last_sent = 0.0

T = TypeVar("T")


def attach(writer) -> None:
    """Send later updates to ``writer`` (a ``logcapture.RecordWriter``); runner use only."""
    global _writer, _last_sent
    _writer = writer
    _last_sent = 0.0


def report_progress(done: int, total: int | None = None, message: str = "") -> bool:
    """Tell the admin that ``done`` units of work out of ``total`` are finished.

    ``done`` and ``total`` are non-negative integers in any unit the command
    likes (rows, files, bytes); ``total`` may be None when unknown, in which
    case the admin shows the count without a percentage or ETA. ``message``
    (at most 200 characters are kept) is shown beside the bar.

    Return True if the update was sent, False when not running as a task or
    when dropped because the previous update is less than MIN_INTERVAL
    seconds old. Raise ValueError for a negative ``done`` or ``total``.
    """
    global _last_sent
    done = int(done)
    total = None if total is None else int(total)
    if done < 0 or (total is not None and total < 0):
        raise ValueError("progress values must not be negative")
    if _writer is None:
        return False
    now = time.monotonic()
    final = total is not None and done >= total
    if not final and now - _last_sent < MIN_INTERVAL:
        return False
    _last_sent = now
    payload = json.dumps([done, total, str(message)[:MAX_MESSAGE]])
    try:
        _writer.write(0, PROGRESS_STREAM, payload)
    except OSError:
        return False  # the supervisor is gone; the command will be killed anyway
    return True


def track(iterable: Iterable[T], total: int | None = None, message: str = "") -> Iterator[T]:
    """Yield the items of ``iterable``, reporting progress after each one.

    ``total`` defaults to ``len(iterable)`` when it has a length, else it
    stays unknown.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    report_progress(0, total, message)
    done = 0
    for item in iterable:
        yield item
        done += 1
        report_progress(done, total, message)


def parse_record(text: str) -> dict | None:
    """Turn a progress record's text back into Report field values; None if malformed.

    The result maps ``progress_done``, ``progress_total`` and
    ``progress_message`` to their values (supervisor side).
    """
    try:
        done, total, message = json.loads(text)
        done = int(done)
        total = None if total is None else int(total)
    except (ValueError, TypeError):
        return None
    if done < 0 or (total is not None and total < 0):
        return None
    return {
        "progress_done": done,
        "progress_total": total,
        "progress_message": str(message)[:MAX_MESSAGE],
    }


#: The largest progress number the database keeps (a PositiveBigIntegerField:
#: PostgreSQL answered "bigint out of range" above it, sqlite3 OverflowError).
MAX_VALUE = 2**63 - 1


def clamp(changes: dict) -> bool:
    """Bring the numbers of a parsed record within MAX_VALUE; return whether any was too large."""
    clamped = False
    for key in ("progress_done", "progress_total"):
        value = changes.get(key)
        if value is not None and value > MAX_VALUE:
            changes[key] = MAX_VALUE
            clamped = True
    return clamped


def percent(done: int | None, total: int | None) -> float | None:
    """Return the completed percentage (0-100) or None when it cannot be known."""
    if done is None or not total:
        return None
    return max(0.0, min(100.0, 100.0 * done / total))


def eta_seconds(done, total, started, reported_at, now) -> float | None:
    """Estimate the seconds left, assuming the rate seen so far goes on.

    ``started``, ``reported_at`` and ``now`` are aware datetimes: the run's
    start, the time of the last progress update and the current time.
    Return None when there is no basis yet (no total, nothing done, or no
    time elapsed); never less than 0.
    """
    if done is None or not total or done <= 0 or started is None or reported_at is None:
        return None
    elapsed = (reported_at - started).total_seconds()
    if elapsed <= 0:
        return None
    remaining = elapsed * (total - done) / done - (now - reported_at).total_seconds()
    return max(0.0, remaining)

"""The one way the app shows a date and time: the admin's own input format, with seconds.

Lists, fields, messages, the schedule preview and report titles all show a
moment as the active language's first ``DATE_INPUT_FORMATS`` and
``TIME_INPUT_FORMATS`` entries (``2026-12-06 07:15:09`` in English,
``06/12/2026 07:15:09`` in Italian): what the admin's date and time inputs
show in the task's Scheduling field, so a time read anywhere can be typed
back there. Seconds are always shown: several runs may start in one minute
(issue 16, item 8). The time zone is the current one (the project's
``TIME_ZONE`` unless a view activated another) unless ``tz`` is given.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from django.utils import formats, timezone

#: The time part when the language's own time input format has no seconds.
TIME_WITH_SECONDS = "%H:%M:%S"


def _local(value: datetime, tz: tzinfo | None) -> datetime:
    if tz is not None:
        return value.astimezone(tz)
    return timezone.localtime(value) if timezone.is_aware(value) else value


def date_part(value: datetime, tz: tzinfo | None = None) -> str:
    """Return the date of ``value`` in the active language's input format (``2026-12-06``)."""
    return _local(value, tz).strftime(formats.get_format("DATE_INPUT_FORMATS")[0])


def time_part(value: datetime, tz: tzinfo | None = None) -> str:
    """Return the time of ``value`` with seconds (``07:15:09``)."""
    fmt = formats.get_format("TIME_INPUT_FORMATS")[0]
    if "%S" not in fmt:
        fmt = TIME_WITH_SECONDS
    return _local(value, tz).strftime(fmt)


def format_datetime(value: datetime | None, tz: tzinfo | None = None, empty: str = "-") -> str:
    """Return ``value`` as the app shows a date and time (``2026-12-06 07:15:09``); ``empty`` for None."""
    if value is None:
        return empty
    return "%s %s" % (date_part(value, tz), time_part(value, tz))

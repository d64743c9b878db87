"""Pure scheduling arithmetic for periodic tasks (no database, no I/O).

A task is scheduled by three values:

* ``anchor`` -- the task's ``scheduling`` field: an *aware* datetime, the
  moment of the first run, or ``None``;
* ``period`` -- the repetition period, one of :data:`PERIODS` (``"minute"``,
  ``"hour"``, ``"day"``, ``"month"``), or ``""`` / ``None`` for a one-shot task;
* ``rate`` -- the repetition rate, a positive ``int`` (``None`` for a one-shot
  task).

The runs of a periodic task lie on a *grid* of slots fixed by the anchor:
slot ``k`` (``k = 0, 1, 2, ...``) is the ``k``-th run, and slot 0 is the anchor
itself.  Every datetime returned by this module is an aware datetime in UTC
(``tzinfo is datetime.timezone.utc``); inputs may be in any time zone, but
naive datetimes are rejected with :class:`ScheduleError`.

Rules
-----

1. **Minutes and hours are real elapsed time.**  Slot ``k`` is
   ``anchor + k * rate * period`` computed in UTC, so an "every 30 minutes"
   task keeps running every 30 real minutes through a daylight saving change,
   including through the hour that is repeated in autumn.

2. **Days and months are wall-clock time in the local zone ``tz``.**  The
   anchor is converted to local time in ``tz``, then
   ``relativedelta(days=k * rate)`` or ``relativedelta(months=k * rate)`` is
   added *to the anchor* (never step by step from the previous slot), and the
   resulting local wall-clock time is converted back to UTC.  A daily task at
   09:00 in Europe/Rome therefore runs at 09:00 local time all year round
   (07:00 UTC in summer, 08:00 UTC in winter).

3. **Months keep the anchor's day of month, clamped to the month's length.**
   An anchor on January 31 gives February 28 (29 in a leap year), March 31,
   April 30, May 31, ...: the clamping never "sticks" because each slot is
   computed from the anchor.

4. **A local time that does not exist** (spring forward; e.g. 02:30 on
   2026-03-29 in Europe/Rome) is taken with the UTC offset in force *before*
   the gap, which shifts it forward by the length of the gap: 02:30 becomes
   03:30 CEST, i.e. 01:30 UTC.

5. **A local time that exists twice** (fall back; e.g. 02:30 on 2026-10-25 in
   Europe/Rome) runs *once*, at its first occurrence (02:30 CEST, 00:30 UTC).

   Rules 4 and 5 are exactly what :mod:`zoneinfo` does with ``fold=0``; local
   slots are built as naive datetimes and then attached to the zone with
   ``.replace(tzinfo=tz, fold=0)`` to make the choice explicit.  Slot 0 is
   always the anchor instant itself, even when the anchor is the second
   occurrence of a repeated local time.

6. **Runs follow the grid, not the previous run.**  The next run is computed
   from the anchor, never from when the previous run started or ended: a run
   that starts 40 seconds late does not move the later runs.

7. **Missed runs are coalesced.**  However many slots were missed (e.g. while
   the server was down), :func:`next_slot` returns only the next slot on the
   grid; there is never a burst of catch-up runs.

8. **Rates are bounded.**  ``rate * period`` may not exceed 100 years (see
   :data:`MAX_RATE`), so the arithmetic stays well inside the range of
   :class:`datetime.datetime`.  A slot beyond year 9999 raises
   :class:`ScheduleError`.

The user-facing messages (errors, summaries) go through Django's
``gettext`` with ``%(name)s`` placeholders; nothing else here needs Django.
The callers pass the project's zone (``TIME_ZONE``) as ``tz``, never the
zone activated for a web request: the schedule must be the same whichever
process computes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from dateutil.relativedelta import relativedelta
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from . import datetimes

__all__ = [
    "MAX_RATE",
    "PERIODS",
    "PreviewRun",
    "ScheduleError",
    "describe",
    "first_run",
    "is_periodic",
    "next_slot",
    "preview",
    "project_tz",
    "repeats",
    "slot",
    "upcoming",
    "validate",
]

#: The allowed repetition periods.
PERIODS = ("minute", "hour", "day", "month")

#: Largest allowed repetition rate for each period: 100 years' worth
#: (100 years of 365.25 days, or 1200 months).
MAX_RATE = {
    "minute": 36525 * 24 * 60,  # 52 596 000 minutes
    "hour": 36525 * 24,  # 876 600 hours
    "day": 36525,
    "month": 1200,
}

#: Length of one unit of the periods that step in real elapsed time.
_ELAPSED_UNITS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
}

#: Plural names of the periods, for messages.
_PLURAL_NAMES = {
    "minute": gettext_lazy("minutes"),
    "hour": gettext_lazy("hours"),
    "day": gettext_lazy("days"),
    "month": gettext_lazy("months"),
}


def _every(period: str, rate: int) -> str:
    """Return "every hour", "every 2 hours", ... (translated, plural-aware)."""
    phrases = {
        "minute": ngettext("every minute", "every %(count)d minutes", rate),
        "hour": ngettext("every hour", "every %(count)d hours", rate),
        "day": ngettext("every day", "every %(count)d days", rate),
        "month": ngettext("every month", "every %(count)d months", rate),
    }
    return phrases[period] % {"count": rate}


_UTC = UTC


def project_tz() -> tzinfo:
    """Return the zone every schedule is computed in: the project's ``TIME_ZONE``.

    Deliberately not the zone activated for the current request
    (``timezone.get_current_timezone()``): a Start pressed by a user whose
    request activated another zone must give the same runs as the spooler,
    which always works in ``TIME_ZONE``.
    """
    return timezone.get_default_timezone()


class ScheduleError(ValueError):
    """Invalid scheduling settings or values out of range.

    The message (``str(error)``) is meant to be shown to a staff user, e.g. as
    a form validation error in the admin.
    """


# ---------------------------------------------------------------------------
# internal helpers
# ---------------------------------------------------------------------------


def _normalize_period(period: str | None) -> str | None:
    """Map the "no period" values ``""`` and ``None`` to ``None``."""
    if period is None or period == "":
        return None
    return period


def _check_aware(value: datetime, name: str) -> datetime:
    """Return ``value`` converted to UTC; raise ScheduleError if not aware."""
    if not isinstance(value, datetime):
        raise ScheduleError(_("The %(name)s must be a date and time.") % {"name": name})
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(_("The %(name)s must include a time zone.") % {"name": name})
    try:
        return value.astimezone(_UTC)
    except (OverflowError, ValueError) as exc:
        raise ScheduleError(_("The %(name)s is out of the supported date range.") % {"name": name}) from exc


def _check_tz(tz: tzinfo) -> None:
    if not isinstance(tz, tzinfo):
        raise TypeError("tz must be a tzinfo instance (e.g. zoneinfo.ZoneInfo), got %r" % (tz,))


def _require_periodic(period: str | None, rate: int | None) -> str:
    """Validate and return the normalized period; it must be periodic."""
    validate(period, rate)
    period = _normalize_period(period)
    if period is None:
        raise ScheduleError(_("The task has no repetition period."))
    return period


def _out_of_range() -> ScheduleError:
    return ScheduleError(_("The next run would be after the year 9999."))


def _slot_utc(anchor_utc: datetime, period: str, rate: int, k: int, tz: tzinfo) -> datetime:
    """Slot ``k`` of the grid; arguments already validated, anchor in UTC."""
    if k == 0:
        return anchor_utc
    try:
        if period in _ELAPSED_UNITS:
            at = anchor_utc + _ELAPSED_UNITS[period] * (k * rate)
            # The slot must exist in local time too (year <= 9999 there):
            # it is shown and compared in local time.
            at.astimezone(tz)
            return at
        local = anchor_utc.astimezone(tz).replace(tzinfo=None)
        if period == "day":
            local = local + relativedelta(days=k * rate)
        else:  # "month"
            local = local + relativedelta(months=k * rate)
        return local.replace(tzinfo=tz, fold=0).astimezone(_UTC)
    except (OverflowError, ValueError) as exc:
        raise _out_of_range() from exc


def _first_index(
    anchor_utc: datetime,
    period: str,
    rate: int,
    t: datetime,
    tz: tzinfo,
    inclusive: bool,
) -> int:
    """Smallest ``k >= 0`` with ``slot(k) > t`` (``>= t`` if ``inclusive``).

    ``t`` must be in UTC.  Runs in constant time: ``k`` is computed by
    division (minute/hour) or estimated from the elapsed local days/months and
    corrected by a few steps (day/month).
    """

    def reached(k: int) -> bool:
        s = _slot_utc(anchor_utc, period, rate, k, tz)
        return s >= t if inclusive else s > t

    if reached(0):
        return 0

    if period in _ELAPSED_UNITS:
        step = _ELAPSED_UNITS[period] * rate
        elapsed = t - anchor_utc  # > 0 (or == 0 when not inclusive)
        if inclusive:
            return -((-elapsed) // step)  # ceil(elapsed / step)
        return elapsed // step + 1

    # Day / month: estimate from the local calendar, then adjust.  The
    # estimate is off by at most a couple of steps (time of day, UTC offset
    # changes), and the grid is non-decreasing, so the loops are short.
    try:
        anchor_local = anchor_utc.astimezone(tz)
        t_local = t.astimezone(tz)
    except (OverflowError, ValueError) as exc:
        raise _out_of_range() from exc
    if period == "day":
        elapsed_units = (t_local.date() - anchor_local.date()).days
    else:
        elapsed_units = (t_local.year - anchor_local.year) * 12 + (t_local.month - anchor_local.month)
    k = max(1, elapsed_units // rate)
    while not reached(k):
        k += 1
    while k > 1 and reached(k - 1):
        k -= 1
    return k


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def validate(period: str | None, rate: int | None) -> None:
    """Check that a repetition period and rate make sense together.

    :param period: one of :data:`PERIODS`, or ``""`` / ``None`` for a
        one-shot task.
    :param rate: the repetition rate, a positive ``int``, or ``None`` for a
        one-shot task.
    :returns: ``None`` when the combination is valid: either no period and no
        rate (one-shot), or a known period with ``1 <= rate <= MAX_RATE[period]``
        (periodic; at most 100 years between two runs).
    :raises ScheduleError: for an unknown period, a period without a rate of
        at least 1, a rate without a period (any rate other than ``None``,
        including 0), a rate that is not a whole number, or a rate above
        :data:`MAX_RATE`.  The message is readable by a staff user.
    """
    period = _normalize_period(period)
    if period is not None and period not in PERIODS:
        raise ScheduleError(
            _('Unknown repetition period "%(period)s": choose one of %(choices)s.')
            % {"period": period, "choices": ", ".join(PERIODS)}
        )
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int)):
        raise ScheduleError(_("The repetition rate must be a whole number."))
    if period is None:
        if rate is not None:
            raise ScheduleError(
                _(
                    "A repetition rate was given without a repetition period: "
                    "choose a period, or clear the rate."
                )
            )
        return
    if rate is None or rate < 1:
        raise ScheduleError(_("A repetition period needs a repetition rate of at least 1."))
    if rate > MAX_RATE[period]:
        raise ScheduleError(
            _("The repetition rate is too large: at most %(max)d %(unit)s (100 years) between two runs.")
            % {"max": MAX_RATE[period], "unit": _PLURAL_NAMES[period]}
        )


def is_periodic(period: str | None, rate: int | None) -> bool:
    """Tell whether the settings describe a repeating task.

    :returns: ``True`` for a valid period with a valid rate, ``False`` for a
        one-shot task (no period and no rate).
    :raises ScheduleError: when the combination is invalid (see
        :func:`validate`), so that an inconsistent configuration is never
        silently treated as one-shot.
    """
    validate(period, rate)
    return _normalize_period(period) is not None


def slot(anchor: datetime, period: str, rate: int, k: int, tz: tzinfo) -> datetime:
    """The ``k``-th run time of a periodic task.

    :param anchor: aware datetime of the first run (slot 0), any time zone.
    :param period: one of :data:`PERIODS`.
    :param rate: repetition rate, ``1 <= rate <= MAX_RATE[period]``.
    :param k: slot index, an ``int >= 0``.
    :param tz: local time zone (a :class:`zoneinfo.ZoneInfo`) used for the
        wall-clock periods ``"day"`` and ``"month"``.
    :returns: aware datetime in UTC.  ``slot(..., 0, ...)`` is the anchor.
    :raises ScheduleError: for invalid period/rate, a naive anchor, a negative
        or non-integer ``k``, or a slot after the year 9999.
    :raises TypeError: if ``tz`` is not a ``tzinfo``.
    """
    period = _require_periodic(period, rate)
    _check_tz(tz)
    anchor_utc = _check_aware(anchor, _("first run (scheduling)"))
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ScheduleError(_("The slot index must be a whole number >= 0."))
    return _slot_utc(anchor_utc, period, rate, k, tz)


def next_slot(anchor: datetime, period: str, rate: int, after: datetime, tz: tzinfo) -> datetime:
    """The first slot of the anchor's grid strictly after ``after``.

    Missed slots are coalesced: however far ``after`` is past the anchor,
    only the single next slot is returned.  Computed in constant time (by
    division, not by iterating over slots).

    :param anchor: aware datetime of slot 0.
    :param period: one of :data:`PERIODS`.
    :param rate: repetition rate, ``>= 1``.
    :param after: aware datetime (typically "now", or the time the last run
        was due); if it is before the anchor, the anchor is returned.
    :param tz: local time zone for ``"day"`` / ``"month"``.
    :returns: aware datetime in UTC, ``> after``.
    :raises ScheduleError: for invalid period/rate, naive datetimes, or when
        the next slot would be after the year 9999.
    :raises TypeError: if ``tz`` is not a ``tzinfo``.
    """
    period = _require_periodic(period, rate)
    _check_tz(tz)
    anchor_utc = _check_aware(anchor, _("first run (scheduling)"))
    after_utc = _check_aware(after, _("reference time"))
    k = _first_index(anchor_utc, period, rate, after_utc, tz, inclusive=False)
    return _slot_utc(anchor_utc, period, rate, k, tz)


def first_run(
    anchor: datetime | None,
    period: str | None,
    rate: int | None,
    now: datetime,
    tz: tzinfo,
) -> tuple[datetime, datetime | None]:
    """What the Start button does: when to run first, and which anchor to keep.

    :param anchor: the task's ``scheduling`` value (aware) or ``None``.
    :param period: repetition period or ``""`` / ``None``.
    :param rate: repetition rate or ``None``.
    :param now: the current time, aware.
    :param tz: local time zone for ``"day"`` / ``"month"``.
    :returns: ``(run_at, anchor_to_store)``, both aware UTC (or ``None`` for
        the anchor), where:

        * one-shot, anchor ``None`` or not in the future: ``(now, anchor)``;
        * one-shot, anchor in the future: ``(anchor, anchor)``;
        * periodic, anchor ``None``: ``(now, now truncated to the whole
          second)`` -- the grid starts now; its slots fall on whole seconds,
          which uWSGI's ``at`` (whole seconds) can hit exactly instead of
          rounding every later run up by up to a second;
        * periodic, anchor in the future: ``(anchor, anchor)``;
        * periodic, anchor not in the future: ``(s, anchor)`` where ``s`` is
          the first slot ``>= now`` (a slot exactly at ``now`` runs now).
          Missed slots are not caught up.
    :raises ScheduleError: for an invalid period/rate, naive datetimes, or a
        first run after the year 9999.
    :raises TypeError: if ``tz`` is not a ``tzinfo``.
    """
    run_at, anchor_utc, _k = _first_run(anchor, period, rate, now, tz)
    return run_at, anchor_utc


def _first_run(
    anchor: datetime | None,
    period: str | None,
    rate: int | None,
    now: datetime,
    tz: tzinfo,
) -> tuple[datetime, datetime | None, int | None]:
    """Shared by first_run/upcoming: ``(run_at, anchor_to_store, k)``.

    ``k`` is the slot index of ``run_at`` (``None`` for one-shot tasks).
    """
    periodic = is_periodic(period, rate)
    _check_tz(tz)
    now_utc = _check_aware(now, _("current time"))
    anchor_utc = None if anchor is None else _check_aware(anchor, _("first run (scheduling)"))
    if not periodic:
        if anchor_utc is None or anchor_utc <= now_utc:
            return now_utc, anchor_utc, None
        return anchor_utc, anchor_utc, None
    period = _normalize_period(period)
    if anchor_utc is None:
        return now_utc, now_utc.replace(microsecond=0), 0
    if anchor_utc > now_utc:
        return anchor_utc, anchor_utc, 0
    k = _first_index(anchor_utc, period, rate, now_utc, tz, inclusive=True)
    return _slot_utc(anchor_utc, period, rate, k, tz), anchor_utc, k


def upcoming(
    anchor: datetime | None,
    period: str | None,
    rate: int | None,
    now: datetime,
    tz: tzinfo,
    count: int = 5,
) -> list[datetime]:
    """The next ``count`` run times, for a preview in the admin.

    The first item is :func:`first_run`'s ``run_at`` (i.e. what would happen
    if Start were pressed at ``now``), followed by the successive slots of the
    grid (the anchor's, or one starting at ``now`` if there is no anchor).

    :param count: how many run times, an ``int >= 0``.
    :returns: list of aware UTC datetimes, strictly increasing.  A one-shot
        task gives at most one item; the list is shorter than ``count`` if the
        grid runs past the year 9999.
    :raises ScheduleError: as :func:`first_run`, or for a negative ``count``.
    :raises TypeError: if ``tz`` is not a ``tzinfo``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ScheduleError(_("The number of run times must be a whole number >= 0."))
    run_at, anchor_utc, k = _first_run(anchor, period, rate, now, tz)
    if count == 0:
        return []
    result = [run_at]
    if k is None:
        return result
    period = _normalize_period(period)
    while len(result) < count:
        k += 1
        try:
            s = _slot_utc(anchor_utc, period, rate, k, tz)
        except ScheduleError:
            break
        if s > result[-1]:  # skip duplicates (a whole local day skipped)
            result.append(s)
    return result


def _format_local(value: datetime, tz: tzinfo) -> str:
    return datetimes.format_datetime(value, tz)


def _shown(value: datetime, tz: tzinfo, fmt: Callable[[datetime], str] | None) -> str:
    return fmt(value.astimezone(tz)) if fmt is not None else _format_local(value, tz)


def repeats(period: str | None, rate: int | None) -> str:
    """Return how often a task runs: "every 2 hours", ... or "once" (translated).

    :raises ScheduleError: for an invalid period/rate (see :func:`is_periodic`).
    """
    if not is_periodic(period, rate):
        return _("once")
    return _every(_normalize_period(period), rate)


def describe(
    anchor: datetime | None,
    period: str | None,
    rate: int | None,
    tz: tzinfo,
    fmt: Callable[[datetime], str] | None = None,
) -> str:
    """A plain-language summary of the schedule, for the admin (translated).

    Times are shown in local time in ``tz`` in the app's one format
    (:func:`taskmanager.datetimes.format_datetime`), or as ``fmt`` (given the
    local time) formats them.  Examples (English)::

        "once, as soon as started"
        "once at 2026-12-01 09:00:00"
        "every day from 2026-12-01 09:00:00"
        "every 2 hours from 2026-12-01 09:00:00"
        "every 3 months, starting when started"
        "every month from 2026-01-31 09:00:00 (on the last day of shorter months)"

    :returns: a ``str`` in the active language.
    :raises ScheduleError: for an invalid period/rate or a naive anchor.
    :raises TypeError: if ``tz`` is not a ``tzinfo``.
    """
    periodic = is_periodic(period, rate)
    _check_tz(tz)
    if anchor is not None:
        _check_aware(anchor, _("first run (scheduling)"))
    if not periodic:
        if anchor is None:
            return _("once, as soon as started")
        return _("once at %(start)s") % {"start": _shown(anchor, tz, fmt)}

    period = _normalize_period(period)
    every = _every(period, rate)
    if anchor is None:
        return _("%(every)s, starting when started") % {"every": every}
    text = _("%(every)s from %(start)s") % {"every": every, "start": _shown(anchor, tz, fmt)}
    if period == "month" and anchor.astimezone(tz).day > 28:
        text = _("%(schedule)s (on the last day of shorter months)") % {"schedule": text}
    return text


@dataclass(frozen=True)
class PreviewRun:
    """One upcoming run as the admin preview shows it.

    ``at`` is aware UTC; ``local`` is the same instant in the local zone.
    ``offset_before`` is the UTC offset in force before this run when it
    differs from this run's (a daylight saving change happened since the
    previous run, or since "now" for the first one), else ``None``.
    ``shifted`` is true when a daily/monthly run is not at the anchor's
    wall-clock time because that time does not exist on that day (rule 4);
    ``repeated`` when the local time exists twice on that day (rule 5).
    """

    at: datetime
    local: datetime
    offset_before: timedelta | None
    shifted: bool
    repeated: bool

    @property
    def dst_change(self) -> bool:
        return self.offset_before is not None


def _is_repeated(local: datetime, tz: tzinfo) -> bool:
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=tz, fold=0).utcoffset()
    second = naive.replace(tzinfo=tz, fold=1).utcoffset()
    # ``local`` comes from astimezone(), so it exists: differing offsets
    # for the two folds mean it occurs twice, not that it falls in a gap.
    return first != second


def preview(
    anchor: datetime | None,
    period: str | None,
    rate: int | None,
    now: datetime,
    tz: tzinfo,
    count: int = 5,
) -> list[PreviewRun]:
    """The next ``count`` runs (as :func:`upcoming`) with their DST remarks.

    :returns: list of :class:`PreviewRun`, in run order.
    :raises ScheduleError: as :func:`upcoming`.
    :raises TypeError: if ``tz`` is not a ``tzinfo``.
    """
    runs = upcoming(anchor, period, rate, now, tz, count)
    if not runs:
        return []
    period = _normalize_period(period)
    _run_at, anchor_utc, _k = _first_run(anchor, period, rate, now, tz)
    wall_clock = period in ("day", "month") and anchor_utc is not None
    anchor_time = anchor_utc.astimezone(tz).time() if wall_clock else None
    previous = _check_aware(now, _("current time")).astimezone(tz).utcoffset()
    result = []
    for at in runs:
        local = at.astimezone(tz)
        offset = local.utcoffset()
        result.append(
            PreviewRun(
                at=at,
                local=local,
                offset_before=previous if offset != previous else None,
                shifted=wall_clock and local.time() != anchor_time,
                repeated=_is_repeated(local, tz),
            )
        )
        previous = offset
    return result

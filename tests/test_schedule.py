"""Tests for taskmanager.schedule (pure Python, no Django settings needed)."""

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskmanager import schedule
from taskmanager.schedule import (
    MAX_RATE,
    PERIODS,
    ScheduleError,
    describe,
    first_run,
    is_periodic,
    next_slot,
    slot,
    upcoming,
    validate,
)

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")


def u(*args):
    """Aware UTC datetime."""
    return datetime(*args, tzinfo=UTC)


def rome(*args, fold=0):
    """Aware Europe/Rome datetime."""
    return datetime(*args, tzinfo=ROME, fold=fold)


def assert_utc(value, expected):
    """Same instant, same wall time in UTC, and tzinfo is timezone.utc."""
    assert value == expected
    assert value.tzinfo is UTC
    assert value.replace(tzinfo=None) == expected.astimezone(UTC).replace(tzinfo=None)


def assert_utc_list(values, expected):
    assert values == expected
    for v in values:
        assert v.tzinfo is UTC


# ---------------------------------------------------------------------------
# validate / is_periodic
# ---------------------------------------------------------------------------


def test_periods_constant():
    assert PERIODS == ("minute", "hour", "day", "month")


@pytest.mark.parametrize(
    "period, rate",
    [
        (None, None),
        ("", None),
        ("minute", 1),
        ("hour", 3),
        ("day", 1),
        ("month", 12),
        ("minute", MAX_RATE["minute"]),
        ("hour", MAX_RATE["hour"]),
        ("day", MAX_RATE["day"]),
        ("month", MAX_RATE["month"]),
    ],
)
def test_validate_accepts(period, rate):
    assert validate(period, rate) is None


def test_max_rate_is_100_years():
    assert MAX_RATE == {
        "minute": 36525 * 24 * 60,
        "hour": 36525 * 24,
        "day": 36525,
        "month": 1200,
    }


@pytest.mark.parametrize(
    "period, rate, fragment",
    [
        ("day", None, "at least 1"),
        ("day", 0, "at least 1"),
        ("hour", -2, "at least 1"),
        (None, 3, "without a repetition period"),
        ("", 3, "without a repetition period"),
        (None, 0, "without a repetition period"),
        ("week", 1, 'Unknown repetition period "week"'),
        ("Day", 1, "Unknown repetition period"),
        ("day", 1.5, "whole number"),
        ("day", "2", "whole number"),
        ("day", True, "whole number"),
        ("minute", MAX_RATE["minute"] + 1, "too large"),
        ("hour", MAX_RATE["hour"] + 1, "too large"),
        ("day", 36526, "at most 36525 days (100 years)"),
        ("month", 1201, "at most 1200 months (100 years)"),
        ("month", 10**30, "too large"),
    ],
)
def test_validate_rejects(period, rate, fragment):
    with pytest.raises(ScheduleError) as info:
        validate(period, rate)
    assert fragment in str(info.value)


def test_schedule_error_is_value_error():
    assert issubclass(ScheduleError, ValueError)
    with pytest.raises(ValueError):
        validate("day", 0)


@pytest.mark.parametrize(
    "period, rate, expected",
    [(None, None, False), ("", None, False), ("day", 1, True), ("minute", 5, True)],
)
def test_is_periodic(period, rate, expected):
    assert is_periodic(period, rate) is expected


@pytest.mark.parametrize("period, rate", [("day", None), (None, 2), ("week", 1)])
def test_is_periodic_rejects_inconsistent_settings(period, rate):
    with pytest.raises(ScheduleError):
        is_periodic(period, rate)


# ---------------------------------------------------------------------------
# slot: minutes and hours (real elapsed time)
# ---------------------------------------------------------------------------


def test_slot_zero_is_anchor_in_utc():
    anchor = rome(2026, 7, 1, 10, 15, 30, 123456)
    for period in PERIODS:
        assert_utc(slot(anchor, period, 7, 0, ROME), u(2026, 7, 1, 8, 15, 30, 123456))


def test_slot_minutes_and_hours_basic():
    anchor = u(2026, 1, 1, 10, 0, 0, 500)
    assert_utc(slot(anchor, "minute", 5, 3, ROME), u(2026, 1, 1, 10, 15, 0, 500))
    assert_utc(slot(anchor, "hour", 2, 5, ROME), u(2026, 1, 1, 20, 0, 0, 500))
    assert_utc(slot(anchor, "hour", 24, 366, ROME), u(2027, 1, 2, 10, 0, 0, 500))


def test_every_30_minutes_through_repeated_autumn_hour():
    # 2026-10-25 Europe/Rome: 03:00 CEST -> 02:00 CET, 02:xx happens twice.
    anchor = rome(2026, 10, 25, 0, 0)  # 2026-10-24 22:00Z
    slots = [slot(anchor, "minute", 30, k, ROME) for k in range(4, 11)]
    assert_utc_list(
        slots,
        [
            u(2026, 10, 25, 0, 0),
            u(2026, 10, 25, 0, 30),
            u(2026, 10, 25, 1, 0),
            u(2026, 10, 25, 1, 30),
            u(2026, 10, 25, 2, 0),
            u(2026, 10, 25, 2, 30),
            u(2026, 10, 25, 3, 0),
        ],
    )
    assert len(set(slots)) == len(slots)
    for a, b in itertools.pairwise(slots):
        assert b - a == timedelta(minutes=30)
    # local wall clock shows 02:00 and 02:30 twice
    local = [(s.astimezone(ROME).strftime("%H:%M"), s.astimezone(ROME).fold) for s in slots]
    assert local == [
        ("02:00", 0),
        ("02:30", 0),
        ("02:00", 1),
        ("02:30", 1),
        ("03:00", 0),
        ("03:30", 0),
        ("04:00", 0),
    ]


def test_hourly_through_spring_gap_is_real_time():
    anchor = rome(2026, 3, 29, 0, 0)  # 2026-03-28 23:00Z, CET
    slots = [slot(anchor, "hour", 1, k, ROME) for k in range(4)]
    assert_utc_list(
        slots,
        [u(2026, 3, 28, 23), u(2026, 3, 29, 0), u(2026, 3, 29, 1), u(2026, 3, 29, 2)],
    )
    assert [s.astimezone(ROME).hour for s in slots] == [0, 1, 3, 4]


# ---------------------------------------------------------------------------
# slot: days and months (wall clock in tz)
# ---------------------------------------------------------------------------


def test_daily_keeps_local_time_across_both_dst_changes():
    anchor = rome(2026, 3, 27, 9, 0)  # CET, 08:00Z
    assert_utc(slot(anchor, "day", 1, 1, ROME), u(2026, 3, 28, 8, 0))
    assert_utc(slot(anchor, "day", 1, 2, ROME), u(2026, 3, 29, 7, 0))  # CEST
    k_oct24 = (date(2026, 10, 24) - date(2026, 3, 27)).days
    assert_utc(slot(anchor, "day", 1, k_oct24, ROME), u(2026, 10, 24, 7, 0))
    assert_utc(slot(anchor, "day", 1, k_oct24 + 1, ROME), u(2026, 10, 25, 8, 0))  # CET
    for k in range(0, 400, 7):
        local = slot(anchor, "day", 1, k, ROME).astimezone(ROME)
        assert (local.hour, local.minute) == (9, 0)


def test_every_n_days_from_anchor():
    anchor = rome(2026, 3, 20, 9, 0)
    assert_utc(slot(anchor, "day", 3, 3, ROME), u(2026, 3, 29, 7, 0))
    assert_utc(slot(anchor, "day", 3, 4, ROME), u(2026, 4, 1, 7, 0))


def test_nonexistent_local_time_shifts_forward_by_gap():
    # 2026-03-29 02:30 does not exist in Europe/Rome -> 03:30 CEST = 01:30Z
    anchor = rome(2026, 3, 28, 2, 30)  # CET, 01:30Z
    s1 = slot(anchor, "day", 1, 1, ROME)
    assert_utc(s1, u(2026, 3, 29, 1, 30))
    assert s1.astimezone(ROME).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 30)
    assert_utc(slot(anchor, "day", 1, 2, ROME), u(2026, 3, 30, 0, 30))  # 02:30 CEST


def test_nonexistent_local_time_monthly():
    anchor = rome(2026, 1, 29, 2, 30)  # CET
    assert_utc(slot(anchor, "month", 1, 1, ROME), u(2026, 2, 28, 1, 30))
    assert_utc(slot(anchor, "month", 1, 2, ROME), u(2026, 3, 29, 1, 30))  # gap
    assert_utc(slot(anchor, "month", 1, 3, ROME), u(2026, 4, 29, 0, 30))


def test_ambiguous_local_time_runs_once_at_first_occurrence():
    anchor = rome(2026, 10, 24, 2, 30)  # CEST, 00:30Z
    assert_utc(slot(anchor, "day", 1, 1, ROME), u(2026, 10, 25, 0, 30))  # CEST
    assert_utc(slot(anchor, "day", 1, 2, ROME), u(2026, 10, 26, 1, 30))  # CET
    # after the first 02:30 the next run is the next day, not the second 02:30
    assert_utc(
        next_slot(anchor, "day", 1, u(2026, 10, 25, 0, 30), ROME),
        u(2026, 10, 26, 1, 30),
    )
    assert_utc(
        next_slot(anchor, "day", 1, u(2026, 10, 25, 1, 0), ROME),
        u(2026, 10, 26, 1, 30),
    )


def test_anchor_at_second_occurrence_is_slot_zero():
    anchor = rome(2026, 10, 25, 2, 30, fold=1)  # CET, 01:30Z
    assert_utc(slot(anchor, "day", 1, 0, ROME), u(2026, 10, 25, 1, 30))
    assert_utc(slot(anchor, "day", 1, 1, ROME), u(2026, 10, 26, 1, 30))
    assert_utc(next_slot(anchor, "day", 1, u(2026, 10, 25, 1, 0), ROME), u(2026, 10, 25, 1, 30))


def test_monthly_clamps_day_of_month_from_anchor():
    anchor = rome(2026, 1, 31, 9, 0)
    slots = [slot(anchor, "month", 1, k, ROME) for k in range(6)]
    assert_utc_list(
        slots,
        [
            u(2026, 1, 31, 8, 0),
            u(2026, 2, 28, 8, 0),
            u(2026, 3, 31, 7, 0),  # CEST since 2026-03-29
            u(2026, 4, 30, 7, 0),
            u(2026, 5, 31, 7, 0),
            u(2026, 6, 30, 7, 0),
        ],
    )


def test_monthly_leap_year_2028():
    anchor = rome(2028, 1, 31, 9, 0)
    assert_utc(slot(anchor, "month", 1, 1, ROME), u(2028, 2, 29, 8, 0))
    assert_utc(slot(anchor, "month", 1, 2, ROME), u(2028, 3, 31, 7, 0))


def test_yearly_from_feb_29():
    anchor = rome(2028, 2, 29, 12, 0)
    assert_utc(slot(anchor, "month", 12, 1, ROME), u(2029, 2, 28, 11, 0))
    assert_utc(slot(anchor, "month", 12, 4, ROME), u(2032, 2, 29, 11, 0))


def test_every_3_months_from_jan_31():
    anchor = rome(2026, 1, 31, 9, 0)
    slots = [slot(anchor, "month", 3, k, ROME) for k in range(1, 5)]
    assert_utc_list(
        slots,
        [
            u(2026, 4, 30, 7, 0),
            u(2026, 7, 31, 7, 0),
            u(2026, 10, 31, 8, 0),  # CET
            u(2027, 1, 31, 8, 0),
        ],
    )


@pytest.mark.parametrize("tz", [UTC, ZoneInfo("UTC")])
def test_utc_zone(tz):
    anchor = u(2026, 1, 31, 9, 0)
    for k in (0, 60, 87, 200, 300):  # incl. Europe's DST change dates
        assert_utc(slot(anchor, "day", 1, k, tz), u(2026, 1, 31, 9) + timedelta(days=k))
    assert_utc(slot(anchor, "month", 1, 1, tz), u(2026, 2, 28, 9, 0))
    assert_utc(slot(anchor, "month", 2, 2, tz), u(2026, 5, 31, 9, 0))
    assert_utc(next_slot(anchor, "day", 1, u(2026, 3, 29, 9, 0), tz), u(2026, 3, 30, 9))


def test_inputs_in_other_time_zones():
    # anchor given in New York time, wall clock taken in Rome
    anchor = datetime(2026, 3, 20, 4, 0, tzinfo=NEW_YORK)  # 08:00Z = 09:00 CET
    assert_utc(slot(anchor, "day", 1, 0, ROME), u(2026, 3, 20, 8, 0))
    assert_utc(slot(anchor, "day", 1, 9, ROME), u(2026, 3, 29, 7, 0))
    after = datetime(2026, 3, 29, 3, 0, tzinfo=NEW_YORK)  # 07:00Z
    assert_utc(next_slot(anchor, "day", 1, after, ROME), u(2026, 3, 30, 7, 0))
    # same instant with a different tz gives a different wall clock
    assert_utc(slot(anchor, "day", 1, 9, NEW_YORK), u(2026, 3, 29, 8, 0))


def test_microseconds_kept():
    anchor = rome(2026, 1, 31, 9, 0, 0, 250000)
    assert_utc(slot(anchor, "month", 1, 1, ROME), u(2026, 2, 28, 8, 0, 0, 250000))
    assert_utc(slot(anchor, "minute", 1, 1, ROME), u(2026, 1, 31, 8, 1, 0, 250000))


@pytest.mark.parametrize("k", [-1, 1.0, True, "1"])
def test_slot_rejects_bad_k(k):
    with pytest.raises(ScheduleError):
        slot(u(2026, 1, 1), "day", 1, k, ROME)


def test_slot_rejects_one_shot_and_invalid():
    with pytest.raises(ScheduleError):
        slot(u(2026, 1, 1), None, None, 1, ROME)
    with pytest.raises(ScheduleError):
        slot(u(2026, 1, 1), "day", 0, 1, ROME)


def test_slot_beyond_year_9999():
    with pytest.raises(ScheduleError, match="9999"):
        slot(u(9999, 1, 1), "month", 12, 1, ROME)
    with pytest.raises(ScheduleError, match="9999"):
        slot(u(9999, 12, 31), "day", 1, 1, ROME)
    with pytest.raises(ScheduleError, match="9999"):
        slot(u(9999, 12, 31, 23), "hour", 1, 1, ROME)


def test_tz_must_be_tzinfo():
    with pytest.raises(TypeError):
        slot(u(2026, 1, 1), "day", 1, 1, "Europe/Rome")


# ---------------------------------------------------------------------------
# naive datetimes
# ---------------------------------------------------------------------------


def test_naive_datetimes_rejected():
    naive = datetime(2026, 1, 1, 9, 0)
    aware = u(2026, 1, 1, 9, 0)
    calls = [
        lambda: slot(naive, "day", 1, 1, ROME),
        lambda: next_slot(naive, "day", 1, aware, ROME),
        lambda: next_slot(aware, "day", 1, naive, ROME),
        lambda: first_run(naive, "day", 1, aware, ROME),
        lambda: first_run(aware, "day", 1, naive, ROME),
        lambda: first_run(naive, None, None, aware, ROME),
        lambda: upcoming(None, "hour", 1, naive, ROME),
        lambda: describe(naive, "day", 1, ROME),
    ]
    for call in calls:
        with pytest.raises(ScheduleError, match="time zone"):
            call()


# ---------------------------------------------------------------------------
# next_slot
# ---------------------------------------------------------------------------


def test_next_slot_from_anchor_not_from_last_run():
    anchor = u(2026, 5, 4, 10, 59, 50)
    assert_utc(
        next_slot(anchor, "hour", 1, u(2026, 5, 4, 11, 0, 15), ROME),
        u(2026, 5, 4, 11, 59, 50),
    )


def test_late_run_does_not_move_later_runs():
    anchor = u(2026, 5, 4, 10, 0)
    # the 11:00 run started 40 s late; the next one is still at 12:00
    assert_utc(
        next_slot(anchor, "hour", 1, u(2026, 5, 4, 11, 0, 40), ROME),
        u(2026, 5, 4, 12, 0),
    )
    anchor = rome(2026, 5, 4, 9, 0)
    assert_utc(
        next_slot(anchor, "day", 1, rome(2026, 5, 6, 9, 0, 40), ROME),
        u(2026, 5, 7, 7, 0),
    )


def test_missed_slots_are_coalesced():
    anchor = u(2026, 5, 4, 10, 0)
    assert_utc(
        next_slot(anchor, "minute", 5, u(2026, 5, 4, 11, 0, 30), ROME),
        u(2026, 5, 4, 11, 5),
    )
    anchor = rome(2026, 1, 31, 9, 0)
    assert_utc(next_slot(anchor, "month", 1, u(2026, 6, 15), ROME), u(2026, 6, 30, 7, 0))


def test_next_slot_is_strictly_after():
    anchor = u(2026, 5, 4, 10, 0)
    assert_utc(
        next_slot(anchor, "minute", 5, u(2026, 5, 4, 10, 5), ROME),
        u(2026, 5, 4, 10, 10),
    )
    assert_utc(next_slot(anchor, "minute", 5, u(2026, 5, 4, 10, 0), ROME), u(2026, 5, 4, 10, 5))
    assert_utc(
        next_slot(anchor, "minute", 5, u(2026, 5, 4, 10, 4, 59, 999999), ROME),
        u(2026, 5, 4, 10, 5),
    )
    anchor = rome(2026, 1, 31, 9, 0)
    assert_utc(next_slot(anchor, "month", 1, u(2026, 2, 28, 8, 0), ROME), u(2026, 3, 31, 7, 0))
    assert_utc(next_slot(anchor, "month", 1, u(2026, 2, 28, 7, 59), ROME), u(2026, 2, 28, 8, 0))


def test_next_slot_before_anchor_returns_anchor():
    anchor = rome(2026, 12, 1, 9, 0)
    for period in PERIODS:
        assert_utc(next_slot(anchor, period, 2, u(2020, 1, 1), ROME), u(2026, 12, 1, 8))


def test_next_slot_far_in_the_future_is_exact():
    anchor = u(2000, 1, 1, 0, 0, 7)
    assert_utc(
        next_slot(anchor, "minute", 7, u(2090, 6, 1), ROME),
        anchor + timedelta(minutes=7) * ((u(2090, 6, 1) - anchor) // timedelta(minutes=7) + 1),
    )
    anchor = rome(2000, 1, 31, 9, 0)
    assert_utc(next_slot(anchor, "month", 1, u(2090, 2, 10), ROME), u(2090, 2, 28, 8, 0))
    assert_utc(next_slot(anchor, "day", 1, u(2090, 7, 10, 12), ROME), u(2090, 7, 11, 7, 0))


def test_next_slot_is_constant_time(monkeypatch):
    calls = []
    real = schedule._slot_utc

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(schedule, "_slot_utc", counting)
    anchor = rome(1990, 1, 31, 9, 0)
    after = u(2089, 12, 31, 23)
    for period in PERIODS:
        for rate in (1, 3):
            calls.clear()
            result = next_slot(anchor, period, rate, after, ROME)
            assert result > after
            # minute/hour: 2 calls; day/month: at most a few correction steps
            assert len(calls) <= 5, (period, rate, len(calls))


def test_next_slot_beyond_year_9999():
    with pytest.raises(ScheduleError, match="9999"):
        next_slot(u(2026, 1, 1), "month", 1, u(9999, 12, 15), ROME)
    with pytest.raises(ScheduleError, match="9999"):
        next_slot(u(2026, 1, 1), "day", 1, u(9999, 12, 31, 12), UTC)


@pytest.mark.parametrize(
    "tzname",
    ["Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "UTC"],
)
@pytest.mark.parametrize("period", ["day", "month"])
def test_next_slot_matches_linear_scan(tzname, period):
    tz = ZoneInfo(tzname)
    rng = random.Random(f"{tzname}-{period}")
    for _ in range(40):
        rate = rng.choice([1, 1, 2, 3, 7])
        anchor = u(2010, 1, 1) + timedelta(seconds=rng.randrange(0, 5 * 365 * 86400))
        after = anchor + timedelta(seconds=rng.randrange(-86400, 2 * 365 * 86400))
        expected = None
        k = 0
        while True:
            s = slot(anchor, period, rate, k, tz)
            if s > after:
                expected = s
                break
            k += 1
        assert next_slot(anchor, period, rate, after, tz) == expected


def test_next_slot_samoa_skipped_day():
    # Pacific/Apia skipped 2011-12-30 entirely; slots never go backwards
    apia = ZoneInfo("Pacific/Apia")
    anchor = datetime(2011, 12, 28, 10, 0, tzinfo=apia)
    runs = upcoming(anchor, "day", 1, anchor, apia, count=4)
    assert runs == sorted(set(runs))
    assert [r.astimezone(apia).date() for r in runs] == [
        date(2011, 12, 28),
        date(2011, 12, 29),
        date(2011, 12, 31),
        date(2012, 1, 1),
    ]


# ---------------------------------------------------------------------------
# first_run
# ---------------------------------------------------------------------------

NOW = u(2026, 6, 10, 12, 0, 0, 1234)


def test_first_run_one_shot_without_anchor():
    assert first_run(None, None, None, NOW, ROME) == (NOW, None)
    run_at, anchor = first_run(None, "", None, NOW, ROME)
    assert_utc(run_at, NOW)
    assert anchor is None


def test_first_run_one_shot_past_anchor_runs_now():
    past = rome(2026, 6, 1, 9, 0)
    run_at, anchor = first_run(past, None, None, NOW, ROME)
    assert_utc(run_at, NOW)
    assert_utc(anchor, u(2026, 6, 1, 7, 0))


def test_first_run_one_shot_anchor_equal_now_runs_now():
    run_at, anchor = first_run(NOW, None, None, NOW, ROME)
    assert_utc(run_at, NOW)
    assert_utc(anchor, NOW)


def test_first_run_one_shot_future_anchor():
    future = rome(2026, 12, 1, 9, 0)
    run_at, anchor = first_run(future, None, None, NOW, ROME)
    assert_utc(run_at, u(2026, 12, 1, 8, 0))
    assert_utc(anchor, u(2026, 12, 1, 8, 0))


def test_first_run_periodic_without_anchor_starts_grid_now():
    run_at, anchor = first_run(None, "hour", 2, NOW, ROME)
    assert_utc(run_at, NOW)
    # The grid starts on the whole second: later slots need no rounding up
    # for uWSGI's whole-second "at".
    assert_utc(anchor, NOW.replace(microsecond=0))
    assert next_slot(anchor, "hour", 2, run_at, ROME) == u(2026, 6, 10, 14, 0, 0)


def test_first_run_periodic_future_anchor():
    future = rome(2026, 12, 1, 9, 0)
    run_at, anchor = first_run(future, "day", 1, NOW, ROME)
    assert_utc(run_at, u(2026, 12, 1, 8, 0))
    assert_utc(anchor, u(2026, 12, 1, 8, 0))


def test_first_run_periodic_past_anchor_next_slot_no_catch_up():
    past = u(2026, 6, 10, 9, 0)  # 3 hours ago, hourly: 09, 10, 11, 12:00 missed
    run_at, anchor = first_run(past, "hour", 1, NOW, ROME)
    assert_utc(run_at, u(2026, 6, 10, 13, 0))
    assert_utc(anchor, past)
    past = rome(2026, 1, 31, 9, 0)
    run_at, anchor = first_run(past, "month", 1, NOW, ROME)
    assert_utc(run_at, u(2026, 6, 30, 7, 0))
    assert_utc(anchor, u(2026, 1, 31, 8, 0))


def test_first_run_periodic_slot_exactly_now_runs_now():
    now = u(2026, 6, 10, 12, 0)
    run_at, anchor = first_run(u(2026, 6, 10, 9, 0), "hour", 1, now, ROME)
    assert_utc(run_at, now)
    assert_utc(anchor, u(2026, 6, 10, 9, 0))
    run_at, _ = first_run(rome(2026, 6, 1, 14, 0), "day", 3, now, ROME)
    assert_utc(run_at, now)  # June 10 14:00 CEST = 12:00Z
    run_at, anchor = first_run(now, "day", 1, now, ROME)  # anchor == now
    assert (run_at, anchor) == (now, now)


def test_first_run_periodic_just_after_slot_waits_for_next():
    now = u(2026, 6, 10, 12, 0, 0, 1)
    run_at, _ = first_run(u(2026, 6, 10, 9, 0), "hour", 1, now, ROME)
    assert_utc(run_at, u(2026, 6, 10, 13, 0))


def test_first_run_rejects_invalid_settings():
    with pytest.raises(ScheduleError):
        first_run(None, "day", None, NOW, ROME)
    with pytest.raises(ScheduleError):
        first_run(None, None, 5, NOW, ROME)


# ---------------------------------------------------------------------------
# upcoming
# ---------------------------------------------------------------------------


def test_upcoming_periodic_past_anchor():
    runs = upcoming(u(2026, 6, 10, 9, 0), "hour", 2, NOW, ROME)
    assert_utc_list(
        runs,
        [u(2026, 6, 10, h) for h in (13, 15, 17, 19, 21)],
    )


def test_upcoming_periodic_without_anchor():
    runs = upcoming(None, "minute", 15, NOW, ROME, count=3)
    grid = NOW.replace(microsecond=0)
    assert_utc_list(runs, [NOW, grid + timedelta(minutes=15), grid + timedelta(minutes=30)])


def test_upcoming_periodic_future_anchor_monthly():
    runs = upcoming(rome(2026, 12, 31, 9, 0), "month", 2, NOW, ROME, count=4)
    assert_utc_list(
        runs,
        [u(2026, 12, 31, 8), u(2027, 2, 28, 8), u(2027, 4, 30, 7), u(2027, 6, 30, 7)],
    )


def test_upcoming_one_shot():
    assert_utc_list(upcoming(None, None, None, NOW, ROME), [NOW])
    future = rome(2026, 12, 1, 9, 0)
    assert_utc_list(upcoming(future, None, None, NOW, ROME, count=10), [u(2026, 12, 1, 8)])
    assert upcoming(future, None, None, NOW, ROME, count=0) == []


def test_upcoming_count_zero_and_invalid():
    assert upcoming(None, "day", 1, NOW, ROME, count=0) == []
    with pytest.raises(ScheduleError):
        upcoming(None, "day", 1, NOW, ROME, count=-1)


def test_upcoming_stops_at_year_9999():
    runs = upcoming(u(9999, 10, 1), "month", 1, u(9999, 9, 1), UTC, count=5)
    assert_utc_list(runs, [u(9999, 10, 1), u(9999, 11, 1), u(9999, 12, 1)])


# ---------------------------------------------------------------------------
# describe
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "anchor, period, rate, expected",
    [
        (None, None, None, "once, as soon as started"),
        (None, "", None, "once, as soon as started"),
        (u(2026, 12, 1, 8, 0), None, None, "once at 2026-12-01 09:00:00"),
        (u(2026, 12, 1, 8, 0), "hour", 2, "every 2 hours from 2026-12-01 09:00:00"),
        (u(2026, 12, 1, 8, 0), "day", 1, "every day from 2026-12-01 09:00:00"),
        (u(2026, 12, 1, 8, 0), "minute", 1, "every minute from 2026-12-01 09:00:00"),
        (u(2026, 12, 1, 8, 0), "minute", 30, "every 30 minutes from 2026-12-01 09:00:00"),
        (u(2026, 7, 1, 7, 0), "day", 3, "every 3 days from 2026-07-01 09:00:00"),
        (u(2026, 7, 15, 7, 0), "month", 1, "every month from 2026-07-15 09:00:00"),
        (
            u(2026, 1, 31, 8, 0),
            "month",
            3,
            "every 3 months from 2026-01-31 09:00:00 (on the last day of shorter months)",
        ),
        (u(2026, 5, 4, 8, 59, 50), "hour", 1, "every hour from 2026-05-04 10:59:50"),
        (None, "day", 1, "every day, starting when started"),
        (None, "month", 6, "every 6 months, starting when started"),
    ],
)
def test_describe(anchor, period, rate, expected):
    assert describe(anchor, period, rate, ROME) == expected


def test_describe_uses_given_tz():
    assert describe(u(2026, 12, 1, 8, 0), "day", 1, UTC) == "every day from 2026-12-01 08:00:00"
    assert describe(u(2026, 12, 1, 8, 0), "day", 1, NEW_YORK) == "every day from 2026-12-01 03:00:00"


def test_describe_rejects_invalid_settings():
    with pytest.raises(ScheduleError):
        describe(None, "day", 0, ROME)


# ---------------------------------------------------------------------------
# preview (what the admin lists)
# ---------------------------------------------------------------------------


def test_preview_marks_the_dst_change_of_a_daily_task():
    # Daily at 09:00 from the eve of the spring change (2026-03-29 in Rome).
    runs = schedule.preview(rome(2026, 3, 28, 9, 0), "day", 1, u(2026, 3, 1), ROME, count=3)
    assert [r.local.strftime("%m-%d %H:%M %Z") for r in runs] == [
        "03-28 09:00 CET",
        "03-29 09:00 CEST",
        "03-30 09:00 CEST",
    ]
    assert [r.dst_change for r in runs] == [False, True, False]
    assert runs[1].offset_before == timedelta(hours=1)
    assert runs[1].local.utcoffset() == timedelta(hours=2)
    assert not any(r.shifted or r.repeated for r in runs)


def test_preview_first_run_compares_with_now():
    # "now" in winter, first run in summer: the first run is marked.
    (run,) = schedule.preview(rome(2026, 4, 2, 9, 0), None, None, u(2026, 3, 1), ROME, count=1)
    assert run.dst_change and run.offset_before == timedelta(hours=1)


def test_preview_marks_a_time_that_does_not_exist():
    runs = schedule.preview(rome(2026, 3, 28, 2, 30), "day", 1, u(2026, 3, 1), ROME, count=3)
    assert [r.local.strftime("%H:%M") for r in runs] == ["02:30", "03:30", "02:30"]
    assert [r.shifted for r in runs] == [False, True, False]


def test_preview_marks_a_time_that_occurs_twice():
    runs = schedule.preview(rome(2026, 10, 24, 2, 30), "day", 1, u(2026, 10, 1), ROME, count=3)
    assert [r.repeated for r in runs] == [False, True, False]
    assert runs[1].local.fold == 0  # the first 02:30
    assert runs[1].at == u(2026, 10, 25, 0, 30)


def test_preview_every_30_minutes_through_the_repeated_hour():
    runs = schedule.preview(rome(2026, 10, 25, 2, 0), "minute", 30, u(2026, 10, 1), ROME, count=4)
    assert [r.local.strftime("%H:%M %Z") for r in runs] == [
        "02:00 CEST",
        "02:30 CEST",
        "02:00 CET",
        "02:30 CET",
    ]
    assert [r.at for r in runs] == [
        u(2026, 10, 25, 0, 0),
        u(2026, 10, 25, 0, 30),
        u(2026, 10, 25, 1),
        u(2026, 10, 25, 1, 30),
    ]
    assert [r.dst_change for r in runs] == [False, False, True, False]
    assert [r.local.fold for r in runs] == [0, 0, 1, 1]
    assert all(r.repeated for r in runs)


def test_preview_of_an_invalid_schedule_raises():
    with pytest.raises(ScheduleError):
        schedule.preview(None, "day", 0, NOW, ROME)

"""Scheduling a task a few seconds ahead through the admin's form (tests/test_scheduling.py, test_task_functions.py)."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from .scale import scaled


def project_tz():
    return ZoneInfo(settings.TIME_ZONE)


#: Seconds before any slot a test sets a few seconds ahead: the requests that add the task,
#: press Start or edit it must be done before its time comes, also on a loaded machine (a
#: slot 1 s ahead was passed before Start, and the run moved to the next slot of the grid).
#: Those requests take 0.1-0.4 s under a load of 3 (with the tests' fast password hasher):
#: 2 s, plus the second :func:`whole_seconds_ahead` adds, is their margin; a slower machine
#: scales it with TM_TEST_TIMEOUT_SCALE. The tests wait for their slots: each second here
#: costs a second in each of them.
SETUP_LEAD = scaled(2)


def whole_seconds_ahead(seconds):
    """An aware UTC time ``seconds`` after :data:`SETUP_LEAD`, on a whole second (the admin
    takes no microseconds)."""
    return (timezone.now() + timedelta(seconds=SETUP_LEAD + seconds + 1)).replace(microsecond=0)


def schedule_fields(when=None, period="", rate=""):
    """The admin form values of the scheduling fields (local time in TIME_ZONE)."""
    local = when.astimezone(project_tz()) if when else None
    return {
        "scheduling_0": local.strftime("%Y-%m-%d") if local else "",
        "scheduling_1": local.strftime("%H:%M:%S") if local else "",
        "repetition_period": period,
        "repetition_rate": str(rate),
    }

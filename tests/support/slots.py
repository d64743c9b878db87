"""Counting the slots of a periodic task against its runs: none doubled, none missing but by the rules.

The rules (docs/scheduling.rst): each slot of the anchor's grid runs once; a
slot that comes while the task runs is skipped (its run's report counts it);
slots missed while no spooler could run the task are merged into one run
when one can again (the coalescing rule). So a slot may lack a run of its
own only while a run was going on or inside a window the test declares (a
node dead, with the task's entry on it).
"""

from datetime import datetime

from taskmanager import schedule
from taskmanager.models import Report


def slot_ledger(task, until: datetime, since: datetime | None = None, excused=()) -> dict:
    """Return {"slots", "doubled", "missing"} for ``task``'s grid from ``since`` to ``until``.

    ``since`` (default: the anchor) is when the task was started: the slots
    before a Start are gone, not made up for (docs/scheduling.rst).

    ``doubled``: slots with more than one run (a run belongs to the last slot
    at or before its start); ``missing``: slots with no run, during no run,
    and outside every (start, end) window of ``excused``. Runs by "run now"
    are outside the grid and not counted.
    """
    task.refresh_from_db()
    tz = schedule.project_tz()
    slots = []
    k = 0
    while True:
        at = schedule.slot(task.scheduling, task.repetition_period, task.repetition_rate, k, tz)
        if at > until:
            break
        if since is None or at >= since:
            slots.append(at)
        k += 1
    runs = list(
        Report.objects.filter(task=task)
        .exclude(trigger=Report.Trigger.RUN_NOW)
        .order_by("invocation_datetime")
    )
    per_slot = {at: [] for at in slots}
    for run in runs:
        owners = [at for at in slots if at <= run.invocation_datetime]
        if owners:
            per_slot[owners[-1]].append(run)
    doubled = {at: [r.pk for r in found] for at, found in per_slot.items() if len(found) > 1}

    def explained(at):
        during_run = any(
            r.invocation_datetime <= at and (r.finished_datetime is None or at < r.finished_datetime)
            for r in runs
        )
        return during_run or any(start <= at <= end for start, end in excused)

    missing = [at for at, found in per_slot.items() if not found and not explained(at)]
    return {"slots": slots, "doubled": doubled, "missing": missing}

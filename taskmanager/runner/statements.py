"""The run path's hot statements (issue 17), as querysets: prepared once per process by :mod:`taskmanager.prepared`.

Each is written with the ORM, the rules staying in the models
(``TaskQuerySet.pending``, ``TaskQuerySet.end_values``, ``dbclock.DbNow``),
with a :class:`taskmanager.prepared.Slot` for each value of a run; :mod:`taskmanager.prepared` compiles it
the first time and only binds the values afterwards. Per one-shot run: the
claim's task read (:func:`read_task`, four joins: the costliest to compile)
and UPDATE (:func:`claim_start`), the report's UPDATE of every log flush and
of the end (:func:`update_report`), the task's UPDATE of the end
(:func:`end_task`); the INSERTs of the report and of the history row are
:func:`taskmanager.prepared.insert`.
"""

from .. import prepared
from ..dbclock import DbNow
from ..models import Report, Task


def read_task(task_id: int):
    """The claim's read of the task, with its command and the users the policy and the report need; or None."""

    def build(slot):
        related = ("command", "started_by", "run_now_by", "definition_changed_by")
        return Task.objects.select_related(*related).filter(pk=slot("pk"))

    return prepared.select_one("claim-task", Task, build, {"pk": task_id})


def claim_start(**values) -> int:
    """The claim of a pending task's run (Start, schedule), if the entry's token is still the task's: the row count.

    ``values``: pk, token (the entry's), and the task's new run_token, next_datetime and payload_version.
    """

    def build(slot):
        return Task.objects.pending().filter(pk=slot("pk"), run_token=slot("token")), {
            "status": Task.Status.STARTED,
            "resume_status": "",
            "run_token": slot("run_token"),
            "next_datetime": slot("next_datetime"),
            "payload_version": slot("payload_version"),
        }

    return prepared.update("claim-start", Task, build, values)[0]


def update_report(
    pk: int, values: dict, running_only: bool, returning: tuple = ()
) -> tuple[int, dict | None]:
    """The report's UPDATE of a log flush or of the run's end (:func:`update`); ``running_only``: if not finished.

    An expression among ``values`` other than ``DbNow`` (the heartbeat) goes through the ORM, returning nothing.
    """

    shape = tuple(
        (name, type(value) if hasattr(value, "resolve_expression") else None)
        for name, value in values.items()
    )
    if any(kind not in (None, DbNow) for _name, kind in shape):
        report = Report.objects.filter(pk=pk)
        report = report.filter(finished_datetime__isnull=True) if running_only else report
        return report.update(**values), None

    def build(slot):
        report = Report.objects.filter(pk=slot("_pk"))
        report = report.filter(finished_datetime__isnull=True) if running_only else report
        return report, {name: DbNow() if kind else slot(name) for name, kind in shape}

    return prepared.update(("report", running_only, shape), Report, build, {**values, "_pk": pk}, returning)


def end_task(pk: int, values: dict, returning: tuple = ()) -> tuple[int, dict | None]:
    """The task's UPDATE at its run's end, if it is STARTED: ``TaskQuerySet.end_values(**values)`` (:func:`update`)."""
    names = tuple(values)

    def build(slot):
        running = Task.objects.filter(pk=slot("_pk"), status=Task.Status.STARTED)
        return running, Task.objects.end_values(**{name: slot(name) for name in names})

    return prepared.update(("end-task", names), Task, build, {**values, "_pk": pk}, returning)

"""The list's Start action: the selected tasks started together (issue 17).

:func:`start_many` starts each selected task the user may start as
:func:`taskmanager.actions.start` would start it, in one transaction per
:data:`BATCH` tasks:

* the rules of a Start are checked per task on the rows as read
  (:class:`taskmanager.policy.RunChecks`: the same rules as each Start
  button's, each command's decided once); a task the user may not run, one
  that is not idle, one whose schedule cannot start is left out, with the
  message its Start button would give;
* one UPDATE starts the others. Its WHERE repeats what SQL can check
  (:func:`taskmanager.actions.startable`: idle, an active command; and each
  task's definition version as checked); a CASE gives each group of tasks
  with the same first run its status and times. The tasks of a batch share
  one new run token: a token only ever stands beside its task's id (the
  spool entry, the claim's guard), and the rows the UPDATE changed are the
  selected ones carrying it;
* their audit entries are inserted together (one ``bulk_create``) in that
  transaction;
* one spool entry each is written on commit; the spool files of entries due
  later are then recorded by one UPDATE (the recovery finds those by path,
  and an entry due at once by its token, as a Start button's).

The summary says how many were started, scheduled, or queued for a spooler
node, and how many could not start (:meth:`Started.summary`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Case, Q, Value, When
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import actions, audit, busy, db, dbclock, policy
from .actions import Outcome
from .models import Report, Task, new_token
from .spooler import SpoolerUnavailable, get_backend

logger = logging.getLogger("taskmanager.actions")

#: Most tasks one transaction starts: the UPDATE lists their ids (and a
#: CASE may list them again), within every database's limit of parameters.
BATCH = 1000
#: How many times a batch's tasks that changed while being started are read and tried again.
ATTEMPTS = 3


@dataclass
class Started:
    """What :func:`start_many` did: the tasks started, scheduled, left to spooler nodes, and the refusals."""

    started: int = 0
    scheduled: int = 0
    queued: int = 0
    refused: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.started or self.scheduled or self.queued)

    def summary(self) -> str:
        """One sentence: "12 tasks were started, 3 tasks are scheduled, 2 tasks could not start."."""
        parts = []
        if self.started:
            parts.append(
                ngettext("%(count)d task was started", "%(count)d tasks were started", self.started)
                % {"count": self.started}
            )
        if self.scheduled:
            parts.append(
                ngettext("%(count)d task is scheduled", "%(count)d tasks are scheduled", self.scheduled)
                % {"count": self.scheduled}
            )
        if self.queued:
            parts.append(
                ngettext(
                    "%(count)d task is queued for a spooler node",
                    "%(count)d tasks are queued for a spooler node",
                    self.queued,
                )
                % {"count": self.queued}
            )
        if self.refused:
            parts.append(
                ngettext(
                    "%(count)d task could not start", "%(count)d tasks could not start", len(self.refused)
                )
                % {"count": len(self.refused)}
            )
        if not parts:
            return _("No task was started.")
        return _("%(parts)s.") % {"parts": ", ".join(parts)}


@dataclass
class _Plan:
    task: Task
    status: str
    run_at: object
    anchor: object
    leave: bool


@busy.retry_deadlocks
@db.pin
def start_many(tasks, user) -> Started:
    """Start the tasks of the queryset ``tasks`` that ``user`` may start (see the module docstring)."""
    selected = _read(tasks.values("pk"))
    result = Started()
    for first in range(0, len(selected), BATCH):
        _start_batch(selected[first : first + BATCH], user, result)
    return result


#: What a Start reads of a task and its command: what its rules, its plan and
#: its messages use, not the 40-odd columns of a task row.
FIELDS = [
    "name",
    "arguments",
    "queue",
    "scheduling",
    "repetition_period",
    "repetition_rate",
    "status",
    "next_datetime",
    "version",
    "command__name",
    "command__app_name",
    "command__active",
    "command__run_by",
    "command__locked_arguments",
]


def _read(ids) -> list[Task]:
    """The tasks ``ids`` (a list or a subquery) with their commands, by name: what a Start checks."""
    return list(
        Task.objects.select_related("command").only(*FIELDS).filter(pk__in=ids).order_by("name", "pk")
    )


def _start_batch(tasks: list[Task], user, result: Started, attempt: int = 1) -> None:
    """Start ``tasks`` (rows just read) in one transaction; count what happened in ``result``."""
    backend = get_backend()
    now = dbclock.now()
    checks = policy.RunChecks(user)
    plans, refused = [], {}
    for task in tasks:
        outcome = actions.not_allowed(task, user, starting=True, checks=checks)
        if outcome is None and task.status != Task.Status.IDLE:
            outcome = actions.refusal_by_state(task)
        plan = outcome or actions.plan_start(task, now)
        if isinstance(plan, Outcome):
            refused[task.pk] = plan
        else:
            plans.append(_Plan(task, *plan, actions.left_for_spoolers(backend, task)))
    if any(not plan.leave for plan in plans):
        try:
            backend.ensure_available()
        except SpoolerUnavailable as exc:
            refused.update({p.task.pk: actions.not_started(p.task, exc) for p in plans if not p.leave})
            plans = [plan for plan in plans if plan.leave]
    done = _update(backend, plans, user, now) if plans else []
    for plan in done:
        if plan.leave:
            result.queued += 1
        elif plan.status == Task.Status.SCHEDULED:
            result.scheduled += 1
        else:
            result.started += 1
    result.refused.extend(refused[task.pk] for task in tasks if task.pk in refused)
    if len(done) < len(plans):
        # Rows that changed since they were read (a definition edited, a run
        # started elsewhere, a command switched off): read again, checked again.
        started_ids = {plan.task.pk for plan in done}
        again = _read([plan.task.pk for plan in plans if plan.task.pk not in started_ids])
        if attempt < ATTEMPTS:
            _start_batch(again, user, result, attempt + 1)
        else:
            result.refused.extend(actions.refusal_by_state(task) for task in again)


def _update(backend, plans: list[_Plan], user, now) -> list[_Plan]:
    """Start ``plans`` in one transaction (see the module docstring); return those started."""
    token = new_token()
    by_version: dict[int, list[int]] = {}
    for plan in plans:
        by_version.setdefault(plan.task.version, []).append(plan.task.pk)
    checked = Q()
    for version, pks in by_version.items():
        checked |= Q(version=version, pk__in=pks)
    changes = {
        "run_token": Value(token),
        "status": _per_task(plans, "status", lambda p: p.status),
        "next_datetime": _per_task(plans, "next_datetime", lambda p: p.run_at),
        "scheduling": _per_task(plans, "scheduling", lambda p: p.anchor),
        **actions.start_changes(backend, user, leave=False),
    }
    if any(plan.leave for plan in plans):
        changes["spooler_node"] = _per_task(
            plans, "spooler_node", lambda p: "" if p.leave else backend.node()
        )
    with transaction.atomic():
        changed = actions.startable().filter(checked).update(**changes)
        done = plans
        if changed != len(plans):
            ids = [plan.task.pk for plan in plans]
            mine = set(Task.objects.filter(pk__in=ids, run_token=token).values_list("pk", flat=True))
            done = [plan for plan in plans if plan.task.pk in mine]
        audit.record_many(
            [
                audit.entry(
                    audit.Action.START,
                    plan.task,
                    user=user,
                    changes=actions.start_audit(plan.task, plan.status, plan.run_at),
                    when=now,
                )
                for plan in done
            ]
        )
        spooled = [plan for plan in done if not plan.leave]
        if spooled:
            transaction.on_commit(lambda: _spool(backend, token, spooled))
    return done


def _per_task(plans: list[_Plan], name: str, value):
    """The value of the field ``name`` for each task: a constant, or a CASE on the ids of each value."""
    groups: dict = {}
    for plan in plans:
        groups.setdefault(value(plan), []).append(plan.task.pk)
    output = Task._meta.get_field(name)
    if len(groups) == 1:
        return Value(next(iter(groups)), output_field=output)
    return Case(
        *(When(pk__in=pks, then=Value(item, output_field=output)) for item, pks in groups.items()),
        output_field=output,
    )


def _spool(backend, token: str, plans: list[_Plan]) -> None:
    """Write one spool entry per started task (after the commit); record the paths of those due later."""
    paths = {}
    due = 0
    for plan in plans:
        future = plan.status == Task.Status.SCHEDULED
        try:
            path = backend.spool(plan.task.pk, token, Report.Trigger.START, plan.run_at if future else None)
        except Exception:  # noqa: BLE001 - nobody is left to tell but the log
            logger.exception("Could not spool task %s after commit; its state is reverted.", plan.task.pk)
            Task.objects.filter(pk=plan.task.pk, run_token=token, status=plan.status).update(
                status=Task.Status.IDLE, run_token="", next_datetime=None
            )
            continue
        if future:
            paths[plan.task.pk] = path
        else:
            due += 1
    if due:
        # Busy spoolers rescan once free, rather than at the next spooler-frequency tick.
        backend.wake()
    if paths:
        Task.objects.filter(pk__in=list(paths), run_token=token).update(
            spooler_id=Case(*(When(pk=pk, then=Value(path)) for pk, path in paths.items()), default=Value(""))
        )

"""What Start, Stop, Run now and schedule edits do to a task (see docs/states.rst).

Each function changes the task with one conditional UPDATE checked by its
row count and returns an :class:`Outcome` whose message is meant for the
person who pressed the button. None of them raises for a state conflict.
"""

import logging
import os
import time
from dataclasses import dataclass

from django.db import connections, transaction
from django.db.models import BooleanField, Case, F, Value, When
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from . import (
    audit,
    busy,
    callargs,
    datetimes,
    db,
    dbclock,
    forms,
    policy,
    redaction,
    schedule,
    spoolfiles,
    startsql,
)
from .audit_display import RUN_WITH_OTHER_ARGUMENTS
from .conf import serves_queue, use_tz_problem
from .models import Command, Report, Task, new_token
from .spooler import SpoolerUnavailable, get_backend

logger = logging.getLogger("taskmanager.actions")

#: No queued Run now: its token and its one-off arguments go together.
NO_RUN_NOW = {"run_now_token": "", "run_now_arguments": None}


@dataclass
class Outcome:
    ok: bool
    message: str


def _hand_over(backend, task_id: int, token: str, trigger: str, at, undo, record: bool = True) -> str | None:
    """Spool the entry once ``token`` is committed; return an error message or None.

    Outside a transaction the entry is spooled at once. Inside one
    (``ATOMIC_REQUESTS``, or the admin saving a change), an idle spooler could
    read the entry before the token it carries is committed and consume it as
    stale, leaving the task waiting for ever; so the entry is spooled on
    commit, after a check that a spooler is there at all. ``undo()`` reverts
    the task's state when spooling fails. ``record``: the spool file's path
    is stored on the task (``spooler_id``, one more write after the commit)
    for the recovery to find the entry by; Start's entry due at once needs
    none (see :func:`start`).
    """

    def spool():
        path = backend.spool(task_id, token, trigger, at)
        if at is None:
            backend.wake()  # a busy spooler takes it once free, not at the next scan tick
        if record:
            Task.objects.filter(pk=task_id, run_token=token).update(spooler_id=path)

    if not transaction.get_connection().in_atomic_block:
        try:
            spool()
        except SpoolerUnavailable as exc:
            undo()
            return str(exc)
        return None
    try:
        backend.ensure_available()
    except SpoolerUnavailable as exc:
        undo()
        return str(exc)

    def spool_on_commit():
        try:
            spool()
        except Exception:  # noqa: BLE001 - nobody is left to tell but the log
            logger.exception("Could not spool task %s after commit; its state is reverted.", task_id)
            undo()

    transaction.on_commit(spool_on_commit)
    return None


def left_for_spoolers(backend, task: Task) -> bool:
    """Whether Start and Run now only record the pending row, handing no entry to a spooler here.

    So on a web-only node (``backend.web_only()``), and for a task whose
    queue this node's spoolers do not serve: a spooler node serving it takes
    the row at its next pass (the database is the queue of record,
    ``recovery/takeover.py``).
    """
    return backend.web_only() or not serves_queue(task.queue)


def _discard_superseded(node: str, path: str, token: str) -> None:
    """Delete the spool file of a token just superseded, when it is on this host (after commit).

    Only a future entry still carrying ``token`` is deleted
    (:func:`taskmanager.spoolfiles.discard`); anything else is left for the
    spoolers (consumed as stale) or the periodic recovery's sweep.
    """
    directory = os.path.dirname(path or "")
    if not (token and path and node and spoolfiles.node_matches(node, directory)):
        return

    def discard():
        try:
            spoolfiles.discard(path, token, time.time() + spoolfiles.DISCARD_MARGIN_SECONDS)
        except Exception:  # noqa: BLE001 - the sweep of the periodic recovery removes it later
            logger.exception("Could not delete the superseded spool file %s", path)

    transaction.on_commit(discard)


def _entry(task_id: int) -> tuple[str, str, str]:
    """``(spooler_node, spooler_id, run_token)`` of the task now, or empty strings."""
    row = Task.objects.filter(pk=task_id).values_list("spooler_node", "spooler_id", "run_token").first()
    return row or ("", "", "")


def _starter(user, field: str = "started_by") -> dict:
    """The fields recording who starts a run: the user, and their username kept if they are deleted."""
    person = user if user is not None and user.is_authenticated else None
    return {field: person, field + "_name": person.get_username() if person else ""}


def _when(dt) -> str:
    return datetimes.format_datetime(dt)


def quoted(task: Task) -> str:
    """The task's name in quotes, as messages show it.

    The admin capitalises the first letter of a message (``capfirst``): a
    message starting with the bare name would show "Shop: nightly sync" for
    "shop: nightly sync" (issue 16, item 11). Quoted, the name shows as typed.
    """
    return "“%s”" % task.name


def refusal_by_state(task: Task) -> Outcome:
    """Why a Start of ``task`` (as just read, not idle) did nothing: it runs, or waits to."""
    if task.status == Task.Status.STARTED:
        return Outcome(False, _("%(task)s is already running.") % {"task": quoted(task)})
    if task.next_datetime:
        return Outcome(
            False,
            _("%(task)s is already scheduled: next run %(when)s.")
            % {"task": quoted(task), "when": _when(task.next_datetime)},
        )
    return Outcome(False, _("%(task)s is already scheduled.") % {"task": quoted(task)})


def not_allowed(
    task: Task, user, starting: bool, other: str | None = None, checks: policy.RunChecks | None = None
) -> Outcome | None:
    """The refusal of policy.run_refusal as an Outcome (Start or Run now), or None when allowed.

    ``user`` None is the project's own code (a shell, a script): only the
    command and its arguments are checked, not a person's rights. ``other``:
    the one-off arguments of Run now with other arguments, checked instead
    of the task's, as a save checks them, for a user who may change them.
    ``checks``: the user's :class:`policy.RunChecks` of many tasks (the list's
    Start action), each command's rules decided once.
    """
    reason = argv = None
    if other is not None:
        reason = (policy.other_arguments_refusal(user, task) if user is not None else None) or (
            policy.command_refusal(task.command) or forms.arguments_error(task.command, other)
        )
        argv = None if reason else callargs.argv_of(task.command, other)
    if reason is None:
        checks = checks or policy.RunChecks(user, check_user=user is not None)
        reason = checks.refusal(task, argv)
    if reason is None:
        return None
    if starting:
        message = _("%(task)s cannot start. %(reason)s")
    else:
        message = _("%(task)s cannot run now. %(reason)s")
    return Outcome(False, message % {"task": quoted(task), "reason": reason})


def _changed_meanwhile(task: Task, version: int | None, reread: bool = True) -> Outcome | None:
    """Refuse a button pressed on a page that showed another version of the task's definition.

    ``reread`` false: ``task`` was just read (by the button's view), its
    version is compared as it is; the conditional UPDATE checks it again.
    """
    if version is None:
        return None
    if reread:
        task.refresh_from_db(fields=["version", "definition_changed_by", "definition_changed_at"])
    if task.version == version:
        return None
    who = task.definition_changed_by.get_username() if task.definition_changed_by else _("someone")
    when = _when(task.definition_changed_at) if task.definition_changed_at else ""
    return Outcome(
        False,
        _(
            "%(task)s was not run: %(who)s changed what it runs (%(when)s) after this page was loaded. "
            "Check the task as it is now, then press the button again."
        )
        % {"task": quoted(task), "who": who, "when": when},
    )


def _queued_on(backend, leave: bool) -> dict:
    """The fields of a run queued in the task's row: this code's payload version and its node.

    ``leave``: left for a spooler node (web-only, or a queue not served
    here): no node. No spool file yet (``spooler_id``): the hand-over writes it.
    """
    return {
        "payload_version": spoolfiles.PAYLOAD_VERSION,
        "spooler_node": "" if leave else backend.node(),
        "spooler_id": "",
    }


def startable():
    """The tasks a Start may change: idle, of an active command (the rights SQL can check).

    The other rules (policy.run_refusal: blocked commands, the user's
    rights, locked arguments) are checked in Python on the row as read, and
    the UPDATE checks that its definition is still that one (``version``);
    the spooler's claim checks them all again with the starter's rights.
    """
    return Task.objects.filter(_command_active(), status=Task.Status.IDLE)


#: ``EXISTS (the task's command, active)`` as SQL, per database alias.
_COMMAND_ACTIVE: dict[str, RawSQL] = {}


def _command_active() -> RawSQL:
    """The condition "the task's command is active", for the WHERE of an UPDATE of tasks.

    Written as SQL once per database, not as ``Exists(Command.objects...)``:
    Django builds and compiles such a subquery again at every UPDATE, about
    0.5 ms of CPU on the path of every Start press (issue 17). The UPDATE's
    table is not aliased (its WHERE has no join), so the subquery names it.
    """
    alias = db.write_db()
    if alias not in _COMMAND_ACTIVE:
        quote = connections[alias].ops.quote_name
        task, command = quote(Task._meta.db_table), quote(Command._meta.db_table)
        sql = "EXISTS (SELECT 1 FROM %s WHERE %s.%s = %s.%s AND %s.%s)" % (
            command,
            command,
            quote(Command._meta.pk.column),
            task,
            quote(Task._meta.get_field("command").column),
            command,
            quote(Command._meta.get_field("active").column),
        )
        _COMMAND_ACTIVE[alias] = RawSQL(sql, (), output_field=BooleanField())
    return _COMMAND_ACTIVE[alias]


def plan_start(task: Task, now) -> tuple[str, object, object] | Outcome:
    """``(status, first run, anchor)`` of a Start of ``task`` at ``now``, or the Outcome refusing it."""
    problem = use_tz_problem()
    if problem:
        return Outcome(
            False, _("%(task)s cannot start. %(error)s") % {"task": quoted(task), "error": problem}
        )
    period = task.repetition_period or None
    try:
        schedule.validate(period, task.repetition_rate)
        run_at, anchor = schedule.first_run(
            task.scheduling, period, task.repetition_rate, now, schedule.project_tz()
        )
    except schedule.ScheduleError as exc:
        return Outcome(False, _("%(task)s cannot start. %(error)s") % {"task": quoted(task), "error": exc})
    return (Task.Status.SCHEDULED if run_at > now else Task.Status.SPOOLED), run_at, anchor


def start_changes(backend, user, leave: bool, requeue: bool = False) -> dict:
    """The fields a Start writes besides its status, token and times: who started it, and where it is queued."""
    starter = {} if requeue else {**_starter(user), "started_version": F("version")}
    return {**starter, **_queued_on(backend, leave)}


def start_audit(task: Task, status: str, run_at) -> dict:
    """The ``changes`` of a Start's audit entry."""
    return {"status": [Task.Status.IDLE, status], "next_datetime": [None, run_at]}


def started(task: Task, status: str, run_at, leave: bool) -> Outcome:
    """The Outcome of a Start that happened."""
    if leave:
        if status == Task.Status.SCHEDULED:
            message = _("%(task)s is scheduled; a spooler node will take it: next run %(when)s.")
            return Outcome(True, message % {"task": quoted(task), "when": _when(run_at)})
        return Outcome(True, _("%(task)s is queued; a spooler node will take it.") % {"task": quoted(task)})
    if status == Task.Status.SCHEDULED:
        return Outcome(
            True,
            _("%(task)s is scheduled: next run %(when)s.") % {"task": quoted(task), "when": _when(run_at)},
        )
    return Outcome(True, _("%(task)s was started.") % {"task": quoted(task)})


@busy.retry_deadlocks
@db.pin
def start(task: Task, user=None, version: int | None = None, requeue: bool = False) -> Outcome:
    """Start an IDLE task: run it now or schedule it, as its fields say.

    ``task`` is the row as just read, with its command: the rights are
    checked on it. ``version``, when given, is the definition version the
    person saw: the start happens only if it is still the task's. One
    transaction, one durable commit: a conditional UPDATE (idle, an active
    command, the definition version checked; :func:`startable`) and the
    audit entry; the spool entry is written on commit. An entry due later
    has its spool file recorded on the task afterwards (the recovery finds
    it by that path); one due at once does not, as Run now's does not: the
    recovery finds it by its token among the files due now
    (``recovery/respool.py``), and the claim takes it within milliseconds.
    ``requeue`` (an edit re-queues the task's pending run, see
    :func:`reschedule`): the run stays its starter's, as the task records
    them, and the edit's own audit entry says what happened.
    """
    if requeue and user is not None:
        reason = policy.run_refusal(task, user)
        if reason:
            # Said to the editor: the refusal is about the starter, not them.
            return Outcome(
                False,
                _("%(task)s is stopped: %(user)s, who started it, may not run it as it is now: %(reason)s")
                % {"task": quoted(task), "user": user.get_username(), "reason": reason},
            )
    for _attempt in range(3):
        outcome = _start(task, user, version, requeue)
        if outcome is not None:
            return outcome
        # The UPDATE changed nothing: the row changed since it was read.
        task = Task.objects.select_related("command").get(pk=task.pk)
        if task.status != Task.Status.IDLE or (version is not None and task.version != version):
            break
        # Still idle: its definition or its command changed; checked again as it is now.
    return _changed_meanwhile(task, version, reread=False) or refusal_by_state(task)


def _start(task: Task, user, version: int | None, requeue: bool) -> Outcome | None:
    """One attempt of :func:`start`; None when its UPDATE changed nothing (the row changed meanwhile)."""
    refused = not_allowed(task, user, starting=True) or _changed_meanwhile(task, version, reread=False)
    if refused:
        return refused
    now = dbclock.now()
    plan = plan_start(task, now)
    if isinstance(plan, Outcome):
        return plan
    status, run_at, anchor = plan
    backend = get_backend()
    token = new_token()
    future = status == Task.Status.SCHEDULED
    leave = left_for_spoolers(backend, task)

    def undo():
        Task.objects.filter(pk=task.pk, run_token=token, status=status).update(
            status=Task.Status.IDLE, run_token="", next_datetime=None
        )

    # The start and its audit entry commit together (the entry is spooled on commit).
    with transaction.atomic():
        # UPDATE startable() WHERE pk and version SET ..., prepared once per process (startsql).
        changes = {"status": status, "run_token": token, "next_datetime": run_at, "scheduling": anchor}
        changes.update(start_changes(backend, user, leave, requeue))
        changed = startsql.start(startable, task.pk, task.version, changes)
        error = None
        if changed == 1 and not leave:
            at = run_at if future else None
            error = _hand_over(backend, task.pk, token, Report.Trigger.START, at, undo, record=future)
        if changed == 1 and not error and not requeue:
            audit.record(
                audit.Action.START, task, user=user, changes=start_audit(task, status, run_at), when=now
            )
    if changed != 1:
        return None
    if error:
        return not_started(task, error)
    return started(task, status, run_at, leave)


def not_started(task: Task, error) -> Outcome:
    """The Outcome of a Start whose entry no spooler can take (``error`` says why)."""
    return Outcome(False, _("%(task)s was not started: %(error)s") % {"task": quoted(task), "error": error})


@busy.retry_deadlocks
@db.pin
def stop(task: Task, user=None) -> Outcome:
    """Cancel a pending run, or ask the supervising spooler to terminate a running one.

    A user needs the same rights on the task's command as for Start (an
    inactive or blocked command's run can still be stopped).
    """
    if user is not None:
        reason = policy.user_refusal(user, task.command)
        if reason:
            return Outcome(
                False, _("%(task)s cannot be stopped: %(reason)s") % {"task": quoted(task), "reason": reason}
            )
    # Each way of stopping commits with its audit entry (one transaction).
    with transaction.atomic():
        outcome = _stop(task, user)
        if outcome.ok:
            audit.record(audit.Action.STOP, task, user=user, message=outcome.message)
    return outcome


def _stop(task: Task, user) -> Outcome:
    now = dbclock.now()
    entry = _entry(task.pk)
    cancelled = (
        Task.objects.pending()
        .filter(pk=task.pk)
        .update(status=Task.Status.IDLE, run_token="", next_datetime=None, spooler_id="", **NO_RUN_NOW)
    )
    if cancelled:
        _discard_superseded(*entry)
        return Outcome(
            True, _("%(task)s was stopped; its pending run is cancelled.") % {"task": quoted(task)}
        )
    # A queued "run now" on an IDLE task (or one whose spool entry was lost).
    queued = (
        Task.objects.filter(pk=task.pk, status=Task.Status.IDLE)
        .exclude(run_now_token="")
        .update(**NO_RUN_NOW)
    )
    if queued:
        return Outcome(True, _("%(task)s: its queued run is cancelled.") % {"task": quoted(task)})
    # A running task: its running reports get the stop request, then the
    # task's tokens are cleared (which also ends a periodic chain: the run's
    # end sets IDLE). Reports first, then the task: the order of a run's end,
    # whose one transaction updates its report, prunes the task's old ones
    # and then updates the task. Stop commits in one transaction with its
    # audit entry, so the opposite order deadlocked with a run ending
    # meanwhile on MySQL/MariaDB (error 1213). The reports are read first,
    # then updated by primary key: an UPDATE that scans the task's reports
    # through their index takes range locks (the same deadlock, before).
    ids = list(
        Report.objects.running()
        .filter(task=task, stop_requested_at__isnull=True)
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        if ids:
            Report.objects.filter(
                pk__in=ids, finished_datetime__isnull=True, stop_requested_at__isnull=True
            ).update(stop_requested_at=now, stopped_by=user if user and user.is_authenticated else None)
        running = Task.objects.filter(pk=task.pk, status=Task.Status.STARTED).update(
            run_token="", next_datetime=None, resume_status="", **NO_RUN_NOW
        )
        if not running:
            transaction.set_rollback(True)  # not running after all: no stop request either
    if running:
        _discard_superseded(*entry)
        return Outcome(True, _("%(task)s is being stopped.") % {"task": quoted(task)})
    return Outcome(False, _("%(task)s is neither running nor scheduled.") % {"task": quoted(task)})


@busy.retry_deadlocks
@db.pin
def run_now(task: Task, user=None, version: int | None = None, other: str | None = None) -> Outcome:
    """Run the task once at once, leaving its schedule and status as they are.

    ``other`` (Run now with other arguments): the arguments of this run
    only, kept with the queued run (``Task.run_now_arguments``) until its
    claim; the task's own arguments are untouched. Only for a user who may
    change the task's arguments (policy.other_arguments_refusal), checked
    as a save checks them.
    """
    refused = not_allowed(task, user, starting=False, other=other) or _changed_meanwhile(
        task, version, reread=False
    )
    if refused:
        return refused
    token = new_token()
    claimable = Task.objects.filter(
        pk=task.pk,
        run_now_token="",
        status__in=[Task.Status.IDLE, *Task.PENDING],
    )
    if version is not None:
        claimable = claimable.filter(version=version)
    # Who pressed Run now is recorded apart from who started the task: the
    # schedule's later runs stay theirs (and are checked with their rights).
    # An idle task records the node its entry goes to, whose periodic
    # recovery respools the entry if it is lost (recovery.runnow).
    backend = get_backend()
    leave = left_for_spoolers(backend, task)
    if leave:
        # No entry here: no node at all, so that a spooler node's pass takes
        # the row at once (recovery/takeover.py), the pending run with it.
        node = Value("")
    else:
        node = Case(When(status=Task.Status.IDLE, then=Value(backend.node())), default=F("spooler_node"))

    def undo():
        Task.objects.filter(pk=task.pk, run_now_token=token).update(**NO_RUN_NOW)

    # The run now and its audit entry commit together (the entry is spooled on commit).
    with transaction.atomic():
        changed = claimable.update(
            run_now_token=token,
            run_now_at=dbclock.DbNow(),
            run_now_arguments=other,
            spooler_node=node,
            payload_version=spoolfiles.PAYLOAD_VERSION,
            **_starter(user, "run_now_by"),
        )
        error = None
        if changed == 1:
            if not leave:
                # No spool file recorded: a Run now's entry is found by its
                # token (recovery/runnow.py); the path's UPDATE, on run_token,
                # never matched a Run now's token anyway.
                error = _hand_over(backend, task.pk, token, Report.Trigger.RUN_NOW, None, undo, record=False)
            if not error:
                _audit_run_now(task, user, other)
    if changed != 1:
        refused = _changed_meanwhile(task, version)
        if refused:
            return refused
        task.refresh_from_db()
        if task.status == Task.Status.STARTED:
            return Outcome(False, _("%(task)s is already running.") % {"task": quoted(task)})
        return Outcome(False, _("%(task)s is already queued to run now.") % {"task": quoted(task)})
    if leave:
        return Outcome(
            True, _("%(task)s is queued to run now; a spooler node will take it.") % {"task": quoted(task)}
        )
    if error:
        return Outcome(False, _("%(task)s was not run: %(error)s") % {"task": quoted(task), "error": error})
    if other is not None:
        return Outcome(True, _("%(task)s will run now with other arguments.") % {"task": quoted(task)})
    return Outcome(True, _("%(task)s will run now.") % {"task": quoted(task)})


def _audit_run_now(task: Task, user, other: str | None) -> None:
    """The Run now's audit entry; with other arguments, the task's and this run's (before and after).

    The run's arguments are redacted as its report's are (they are a run's
    text: ``docs/security.rst``, "Secrets in logs"); the task's history shows
    them only to those who may read the command's reports
    (``TaskAdmin.audit_entry_changes``).
    """
    if other is None:
        audit.record(audit.Action.RUN_NOW, task, user=user)
        return
    redact, _errors = redaction.redactor()
    audit.record(
        audit.Action.RUN_NOW,
        task,
        user=user,
        changes={"arguments": [task.arguments, redact(other)]},
        # Stored in English, shown in the reader's language (audit_display).
        message=RUN_WITH_OTHER_ARGUMENTS,
    )


def cancel_other_arguments(task: Task, old_command: str) -> Outcome | None:
    """After an edit of the task's command: cancel a queued Run now with other arguments, or None.

    Its arguments were chosen for, and checked against, the command the task
    had (its parser, its approved strings): run with the new command, they
    would be arguments nobody checked, in a run the editor never saw queued.
    Its spool entry is consumed as stale (its token is cleared, as Stop
    clears it). A plain queued Run now stays: it runs the task as it is.
    Call it in the edit's transaction.
    """
    queued = Task.objects.filter(pk=task.pk, run_now_arguments__isnull=False).exclude(run_now_token="")
    who = queued.values_list("run_now_by_name", flat=True).first()
    if who is None or not queued.update(**NO_RUN_NOW):
        return None
    return Outcome(
        False,
        _(
            "%(task)s: the run with other arguments that %(user)s queued is cancelled: its arguments were "
            "chosen for the command %(command)s."
        )
        % {"task": quoted(task), "user": who or _("someone"), "command": old_command},
    )


@db.pin
def reschedule(task: Task, user=None) -> Outcome | None:
    """After an edit, make the task's pending run follow its new definition.

    ``user`` is who made the edit (who may run the new definition, see
    forms.TaskForm). The new pending run stays its starter's (Run now never
    re-attributes, nor does an edit): the task records the editor as who
    defined it (``definition_changed_by``), and the claim checks the rights
    of both (policy.claim_refusal).

    * SCHEDULED/SPOOLED: the pending entry is cancelled (its token cleared,
      so the old spool file runs nothing) and Start's rules apply to the new
      schedule, with a new token and spool entry.
    * STARTED with a next run already spooled (a periodic chain): that next
      run is replaced by the first slot of the new schedule strictly after
      now; the current run goes on untouched.

    Return None when there is nothing pending to change (IDLE, or a run
    that ends the chain).
    """
    for _attempt in range(5):
        row = (
            Task.objects.filter(pk=task.pk)
            .values_list("status", "run_token", "spooler_node", "spooler_id")
            .first()
        )
        if row is None or not row[1]:
            return None
        status, old, node, path = row
        if status in Task.PENDING:
            # Stop then start, so that every rule of Start applies to the new schedule.
            stopped = Task.objects.filter(pk=task.pk, status=status, run_token=old).update(
                status=Task.Status.IDLE, run_token="", next_datetime=None, spooler_id=""
            )
            if stopped:
                _discard_superseded(node, path, old)
                task.refresh_from_db()
                return start(task, task.started_by, requeue=True)
        elif status == Task.Status.STARTED:
            task.refresh_from_db()
            outcome = _replace_next_run(task, old)
            if outcome is not None:
                return outcome
        else:
            return None
        # A spooler claimed or re-spooled the task meanwhile: look again.
    return Outcome(
        False,
        _("%(task)s kept changing while it was being rescheduled: check its next execution.")
        % {"task": quoted(task)},
    )


def _replace_next_run(task: Task, old_token: str) -> Outcome | None:
    """Replace the next run a running task has spooled; None if the run ended meanwhile.

    The new next run stays the starter's, as the task records them.
    """
    now = dbclock.now()
    period = task.repetition_period or None
    anchor = task.scheduling
    try:
        if schedule.is_periodic(period, task.repetition_rate):
            anchor = anchor or now
            next_at = schedule.next_slot(anchor, period, task.repetition_rate, now, schedule.project_tz())
        else:
            next_at = anchor if anchor and anchor > now else None
    except schedule.ScheduleError as exc:
        return Outcome(
            False, _("%(task)s cannot be rescheduled: %(error)s") % {"task": quoted(task), "error": exc}
        )
    backend = get_backend()
    token = new_token() if next_at else ""
    old_node, old_path = task.spooler_node, task.spooler_id
    # Left for a spooler node: no node, no entry; the end of the current run
    # (respool_deferred) or a spooler node's take-over pass spools it.
    leave = left_for_spoolers(backend, task)
    changed = Task.objects.filter(pk=task.pk, status=Task.Status.STARTED, run_token=old_token).update(
        run_token=token,
        next_datetime=next_at,
        scheduling=anchor,
        **_queued_on(backend, leave),
    )
    if not changed:
        return None
    _discard_superseded(old_node, old_path, old_token)
    if not token:
        return Outcome(
            True,
            _("%(task)s is running; it will not run again after this run.") % {"task": quoted(task)},
        )

    def undo():
        Task.objects.filter(pk=task.pk, run_token=token).update(run_token="", next_datetime=None)

    error = None if leave else _hand_over(backend, task.pk, token, Report.Trigger.SCHEDULE, next_at, undo)
    if error:
        return Outcome(
            False,
            _("%(task)s is running, but its next run could not be spooled: %(error)s")
            % {"task": quoted(task), "error": error},
        )
    return Outcome(
        True,
        _("%(task)s is running; next run after this one: %(when)s")
        % {"task": quoted(task), "when": _when(next_at)},
    )

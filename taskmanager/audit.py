"""The audit: who started, stopped, changed or deleted what, and when (``AuditEntry`` rows).

:func:`record` writes one entry in the caller's transaction, so an act and
its entry commit together or not at all (:func:`record_many` many, in one
INSERT: the list's Start action); the callers are where the acts
happen (``actions``, the admin's saves and deletions, ``collect_commands``,
report pruning). Values are kept as JSON text (:func:`value`), the actor
and the object by id and name, so an entry outlives what it describes.
:func:`prune` deletes entries older than ``TASKMANAGER_AUDIT_DAYS`` in one
statement (the periodic recovery pass runs it).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping

from django.db import models

from . import dbclock, prepared
from .conf import app_settings
from .models import AuditEntry

Action = AuditEntry.Action
ObjectType = AuditEntry.ObjectType

#: The actor of the acts of ``collect_commands`` (no user).
COLLECTION = "collect_commands"
#: The actor of the acts of the spoolers (report pruning after a run).
SYSTEM = "system"


def value(item):
    """Return ``item`` as a JSON value: dates in ISO 8601, model instances by name, ``None`` kept."""
    if item is None or isinstance(item, bool | int | float | str):
        return item
    if isinstance(item, datetime.datetime | datetime.date | datetime.time):
        return item.isoformat()
    if isinstance(item, datetime.timedelta):
        return item.total_seconds()
    if isinstance(item, models.Model):
        return str(item)
    if isinstance(item, Iterable):
        return [value(x) for x in item]
    return str(item)


def snapshot(obj, fields: Iterable[str]) -> dict:
    """Return ``{field: value(...)}`` of ``obj``'s ``fields`` (foreign keys by name)."""
    return {name: value(getattr(obj, name)) for name in fields}


def diff(before: Mapping, after: Mapping) -> dict:
    """Return ``{field: [before, after]}`` for the fields whose value differs."""
    return {
        name: [before.get(name), after.get(name)]
        for name in dict.fromkeys([*before, *after])
        if before.get(name) != after.get(name)
    }


def actor_of(user) -> tuple[int | None, str]:
    """``(id, username)`` of an authenticated user, else ``(None, "")``."""
    if user is not None and getattr(user, "is_authenticated", False):
        return user.pk, user.get_username()
    return None, ""


def record(action: str, obj=None, **fields) -> AuditEntry:
    """Write one audit entry in the caller's transaction and return it (the fields of :func:`entry`)."""
    item = entry(action, obj, **fields)
    # item.save(force_insert=True), its INSERT compiled once per process (a Start press writes one).
    return prepared.insert(item)


def record_many(entries: list[AuditEntry]) -> None:
    """Write the entries made by :func:`entry` in the caller's transaction (one bulk INSERT)."""
    AuditEntry.objects.bulk_create(entries)


def entry(
    action: str,
    obj=None,
    *,
    user=None,
    actor: str = "",
    object_type: str | None = None,
    object_id=None,
    object_repr: str | None = None,
    task_ref=None,
    changes: Mapping | None = None,
    message: str = "",
    when: datetime.datetime | None = None,
) -> AuditEntry:
    """Return one audit entry, not saved (:func:`record` saves it).

    ``obj`` is the task, command or report acted on (or give ``object_type``,
    ``object_id`` and ``object_repr``); ``user`` who acted, or ``actor`` a
    name for an act of no user (:data:`COLLECTION`, :data:`SYSTEM`).
    ``changes`` is ``{field: [before, after]}``; ``when`` the database's now
    (taken when not given).
    """
    actor_id, actor_name = actor_of(user)
    if object_type is None:
        object_type = OBJECT_TYPES[type(obj).__name__]
    if obj is not None:
        object_id = obj.pk if object_id is None else object_id
        object_repr = str(obj) if object_repr is None else object_repr
        if task_ref is None and object_type == ObjectType.REPORT:
            task_ref = obj.task_id
    return AuditEntry(
        when=when or dbclock.now(),
        actor_id=actor_id,
        actor_name=(actor_name or actor)[:150],
        action=action,
        object_type=object_type,
        object_id=str(object_id if object_id is not None else ""),
        object_repr=(object_repr or "")[:300],
        task_ref=str(task_ref) if task_ref is not None else "",
        changes={name: [value(a), value(b)] for name, (a, b) in (changes or {}).items()},
        message=message,
    )


#: The object type of each audited model, by class name.
OBJECT_TYPES = {"Task": ObjectType.TASK, "Command": ObjectType.COMMAND, "Report": ObjectType.REPORT}


def for_object(object_type: str, object_id):
    """The entries of one task (its reports' included) or command, newest first."""
    entries = AuditEntry.objects.filter(object_type=object_type, object_id=str(object_id))
    if object_type == ObjectType.TASK:
        entries = entries | AuditEntry.objects.filter(task_ref=str(object_id))
    return entries.order_by("-when", "-pk")


def prune(now: datetime.datetime | None = None) -> int:
    """Delete the entries older than ``TASKMANAGER_AUDIT_DAYS`` days (one DELETE); return how many.

    0 (or less) keeps them for ever.
    """
    days = float(app_settings.AUDIT_DAYS or 0)
    if days <= 0:
        return 0
    cutoff = (now or dbclock.now()) - datetime.timedelta(days=days)
    deleted, _per_model = AuditEntry.objects.filter(when__lt=cutoff).delete()
    return deleted

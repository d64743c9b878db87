"""An audit entry as the history pages and the audit list show it (issue 16).

The entry keeps raw values (field names, choice values, ISO 8601 dates, see
:func:`taskmanager.audit.value`); here they become what a user reads, in
the active language: a field by its verbose name, a choice by its label, a
date and time in the app's one format (:mod:`taskmanager.datetimes`), a
boolean as yes / no. Every function returns safe HTML built with
``format_html`` / ``format_html_join``.
"""

from __future__ import annotations

import re
from datetime import datetime

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from . import datetimes, display
from .models import AuditEntry, Command, Report, Task

#: What an empty value shows, as the admin's columns show one.
EMPTY = display.EMPTY
#: The model whose fields an entry's changes name, by object type.
MODELS = {
    AuditEntry.ObjectType.TASK: Task,
    AuditEntry.ObjectType.COMMAND: Command,
    AuditEntry.ObjectType.REPORT: Report,
}
#: The stored English text of the definition's version (``admin`` stores it untranslated).
DEFINITION_VERSION = gettext_noop("Definition version %(version)s.")
_VERSION_RE = re.compile(r"^Definition version (\d+)\.")
#: The stored English message of a Run now with other arguments (``actions`` stores it untranslated).
RUN_WITH_OTHER_ARGUMENTS = gettext_noop("With other arguments, for this run only; the task keeps its own.")


def _field(model, name: str):
    try:
        return model._meta.get_field(name) if model is not None else None
    except FieldDoesNotExist:
        return None


def field_label(model, name: str) -> str:
    """The verbose name of ``model``'s field ``name`` (a relation's by its model), else the name."""
    field = _field(model, name)
    if field is None:
        return _("reports") if name == "reports" else name.replace("_", " ")
    if field.auto_created and not field.concrete:
        return str(field.related_model._meta.verbose_name_plural)
    return str(field.verbose_name)


def _as_datetime(item) -> datetime | None:
    if not isinstance(item, str) or len(item) < 19 or item[4] != "-" or item[10] != "T":
        return None
    try:
        return datetime.fromisoformat(item)
    except ValueError:
        return None


def field_value(model, name: str, item) -> str:
    """One stored value as shown: a choice's label, a date in the app's format, yes / no, lists joined."""
    if item in (None, "", []):
        return EMPTY
    if isinstance(item, bool):
        return _("yes") if item else _("no")
    if isinstance(item, list):
        return ", ".join(field_value(model, name, x) for x in item)
    field = _field(model, name)
    if getattr(field, "choices", None):
        return str(dict(field.flatchoices).get(item, item))
    moment = _as_datetime(item)
    if moment is not None:
        return datetimes.format_datetime(moment)
    if isinstance(field, models.DurationField) and isinstance(item, int | float):
        return display.format_duration(item)
    return str(item)


def changes_html(entry, changes=None) -> str:
    """The entry's ``{field: [before, after]}`` (``changes``: the part this user may see) as lines.

    A "Run now with other arguments" keeps the task's arguments: its line says
    what the run used, not a change of the task.
    """
    changes = entry.changes if changes is None else changes
    if not changes:
        return ""
    model = MODELS.get(entry.object_type)
    lines = []
    for name, (before, after) in changes.items():
        if entry.action == AuditEntry.Action.RUN_NOW and name == "arguments":
            lines.append(
                format_html(
                    '<div class="tm-audit-change"><b>{}</b>: {} ({})</div>',
                    _("one-off arguments"),
                    field_value(model, name, after),
                    _("the task's own kept"),
                )
            )
            continue
        lines.append(
            format_html(
                '<div class="tm-audit-change"><b>{}</b>: <del>{}</del> &rarr; <ins>{}</ins></div>',
                field_label(model, name),
                field_value(model, name, before),
                field_value(model, name, after),
            )
        )
    return format_html_join("", "{}", ((line,) for line in lines))


def message_text(entry) -> str:
    """The entry's message, the stored English texts of this module in the active language."""
    message = entry.message or ""
    if message == RUN_WITH_OTHER_ARGUMENTS:
        return _(RUN_WITH_OTHER_ARGUMENTS)
    return _VERSION_RE.sub(lambda m: _(DEFINITION_VERSION) % {"version": m.group(1)}, message)

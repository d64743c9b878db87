"""The Start press's hot statements (issue 17), as querysets: prepared once per process by :mod:`.prepared`.

A Start press reads the task (with its command: the rights are checked on
it) and starts it with one conditional UPDATE; compiling those two through
the ORM at every press cost about as much CPU as the rest of the view. As
in ``runner/statements.py``, each is written with the ORM, the rules
staying where they are (:func:`taskmanager.actions.startable`: idle, an
active command; the definition version the page showed), with a
:class:`.prepared.Slot` for each value of a press; :mod:`.prepared`
compiles it once per process and database and only binds the values
afterwards. The audit entry's INSERT is :func:`.prepared.insert` too
(``audit.record``).
"""

from django.db.models import Model

from . import prepared
from .models import Task


def read_task(pk: int):
    """The task of a button press, with its command; or None."""

    def build(slot):
        return Task.objects.select_related("command").filter(pk=slot("pk"))

    return prepared.select_one("press-task", Task, build, {"pk": pk})


def start(startable, pk: int, version: int, values: dict) -> int:
    """The Start's conditional UPDATE: the row count.

    ``startable()`` is the queryset of the tasks a Start may change, the
    task ``pk`` is changed only while its definition is ``version``;
    ``values`` are the fields set, as for ``QuerySet.update``. A model
    instance among them (the starter) is bound by its pk; an expression
    (``F("version")``) is compiled into the statement, so it must not
    depend on the press (its ``repr`` is part of the statement's key).
    """
    shape = tuple(
        (name, repr(value) if hasattr(value, "resolve_expression") else None)
        for name, value in values.items()
    )

    def build(slot):
        changes = {name: values[name] if kind else slot(name) for name, kind in shape}
        return startable().filter(pk=slot("_pk"), version=slot("_version")), changes

    bound = {
        name: value.pk if isinstance(value, Model) else value
        for name, value in values.items()
        if not hasattr(value, "resolve_expression")
    }
    return prepared.update(("start", shape), Task, build, {**bound, "_pk": pk, "_version": version})[0]

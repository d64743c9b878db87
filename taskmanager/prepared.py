"""Prepared statements of the hot paths: compiled by Django once per process, then run with bound parameters.

Why (issue 17): a run of a command that does nothing costs its spooler
process a few milliseconds of CPU, and most of that used to be Django
compiling the same few queries again at every run (0.2-1 ms each: the
task read with its four joins, the claim's UPDATE, the end's UPDATEs),
not the database running them (about 0.02 ms each on SQLite). So the hot
statements are written as querysets, as anywhere else (the rules stay in
the models: ``Task.end_status``, ``TaskQuerySet.pending``,
``dbclock.DbNow``), compiled once per process, database alias and vendor
with a :class:`Slot` wherever a value of the run goes, and each run only
binds its values and executes the SQL text:

* :func:`select_one` reads one row into model instances (``select_related``
  included), as ``QuerySet.first()`` would, through the same converters and
  ``Model.from_db``;
* :func:`update` runs an UPDATE and, where the database has ``UPDATE ...
  RETURNING`` (SQLite >= 3.35, PostgreSQL; not MySQL/MariaDB, whose 10.11
  has ``INSERT``/``DELETE ... RETURNING`` only: :func:`returns_from_update`),
  returns what it wrote, so that the end of a run reads nothing apart; where
  it cannot, the row is None and the caller reads as it did before.

A value bound to a :class:`Slot` goes through its field's
``get_db_prep_save`` (dates, durations, JSON: as the ORM would write them);
a Slot of a WHERE clause names a key (int or text) and is bound as is.
The statements run in the caller's transaction, if any, on the model's write
database (as ``QuerySet.update``), and through ``connection.cursor()``, so
Django's execute wrappers (and the tests' statement counters) see them.
The text of a statement depends on the database's vendor and version only,
never on the values: a value that would change it (an expression, None in a
WHERE clause) is part of the statement's key or stays with the ORM.
"""

import sqlite3

from django.db import connections, router, transaction
from django.db.models import Expression, QuerySet, signals
from django.db.models.query import get_related_populators
from django.db.models.sql import InsertQuery, UpdateQuery
from django.utils.inspect import func_supports_parameter


def returns_from_update(using: str) -> bool:
    """Tell whether the database ``using`` has ``UPDATE ... RETURNING``."""
    vendor = connections[using].vendor
    if vendor == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 35)
    return vendor == "postgresql"


class Slot(Expression):
    """Where a run's value goes in a prepared statement: one placeholder, bound by name at each run."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.prep_field = None  # set for a SET value: the field preparing it for the database

    def as_sql(self, compiler, connection):
        return "%s", [self]


def _bind(template: list, values: dict, connection) -> list:
    """The parameters of one execution: the template's constants, and each Slot's value prepared."""
    params = []
    for param in template:
        if isinstance(param, Slot):
            value = values[param.name]
            if param.prep_field is not None:
                value = param.prep_field.get_db_prep_save(value, connection=connection)
            params.append(value)
        else:
            params.append(param)
    return params


def _converters(connection, fields) -> list:
    """(position, functions, expression) of the columns whose values need converting, as the ORM reads them."""
    out = []
    for pos, expression in enumerate(fields):
        funcs = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if funcs:
            out.append((pos, funcs, expression))
    return out


def _convert(rows, converters, connection) -> list[list]:
    result = []
    for row in rows:
        row = list(row)
        for pos, funcs, expression in converters:
            value = row[pos]
            for func in funcs:
                value = func(value, expression, connection)
            row[pos] = value
        result.append(row)
    return result


# (kind, key, alias, vendor) -> the prepared statement (this process's).
_prepared: dict = {}


def _prepared_for(kind: str, key, using: str, make):
    connection = connections[using]
    cache_key = (kind, key, using, connection.vendor)
    prepared = _prepared.get(cache_key)
    if prepared is None:
        prepared = _prepared[cache_key] = make(connection)
    return prepared


class _Select:
    def __init__(self, queryset: QuerySet, using: str, connection):
        compiler = queryset.query.get_compiler(using)
        self.sql, self.template = compiler.as_sql()
        klass_info, select = compiler.klass_info, compiler.select
        self.model = klass_info["model"]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        self.fields = slice(start, end)
        self.init_list = [column[0].target.attname for column in select[start:end]]
        # Django 6.1 gave querysets a fetch mode, which the ORM passes to the
        # populators and to from_db(); earlier versions take neither.
        self.fetch_mode = {}
        if func_supports_parameter(get_related_populators, "fetch_mode"):
            self.fetch_mode = {"fetch_mode": queryset._fetch_mode}
        self.populators = get_related_populators(klass_info, select, using, *self.fetch_mode.values())
        self.converters = _converters(connection, [column[0] for column in select])


def select_one(key: str, model, build, values: dict):
    """Return the first row of the queryset ``build(Slot)`` with ``values`` bound, as a ``model`` instance, or None.

    ``build`` is called once per process and database (the model's read
    database, as the ORM would choose it), with :class:`Slot` to name the
    values; ``key`` names the statement.
    """
    using = router.db_for_read(model)
    connection = connections[using]
    prepared = _prepared_for("select", key, using, lambda c: _Select(build(Slot)[:1], using, c))
    with connection.cursor() as cursor:
        cursor.execute(prepared.sql, _bind(prepared.template, values, connection))
        rows = cursor.fetchmany(1)
    if not rows:
        return None
    row = _convert(rows, prepared.converters, connection)[0]
    obj = prepared.model.from_db(using, prepared.init_list, row[prepared.fields], **prepared.fetch_mode)
    for populator in prepared.populators:
        populator.populate(row, obj)
    return obj


class _Update:
    def __init__(self, queryset: QuerySet, values: dict, returning: tuple, using: str, connection):
        query = queryset.query.chain(UpdateQuery)
        query.get_initial_alias()
        if query.count_active_tables() != 1:
            raise ValueError(
                "prepared.update() updates one table, not a join from %s" % queryset.model.__name__
            )
        meta = queryset.model._meta
        for name, value in values.items():
            if isinstance(value, Slot):
                value.prep_field = meta.get_field(name)
        query.add_update_values(values)
        query.annotations = {}  # as QuerySet.update(): none in subqueries
        self.sql, self.template = query.get_compiler(using).as_sql()
        self.returning = returning
        if returning:
            columns = [meta.get_field(name) for name in returning]
            self.sql += " RETURNING %s" % ", ".join(connection.ops.quote_name(f.column) for f in columns)
            self.converters = _converters(connection, [f.get_col(meta.db_table) for f in columns])


def update(key, model, build, values: dict, returning: tuple[str, ...] = ()) -> tuple[int, dict | None]:
    """Run the UPDATE of ``build(Slot) -> (queryset of model, {field: value})`` with ``values`` bound.

    Return the row count and the first updated row's ``returning`` fields
    (their new values); the row is None when nothing matched, when
    ``returning`` is empty, or where the database has no ``UPDATE ...
    RETURNING`` (:func:`returns_from_update`): the caller then reads what it
    needs apart. ``key`` names the statement: whatever changes its text (the
    fields set, an expression among the values) must be in it. Only for an
    UPDATE of one table (a filter spanning a relation would need Django's
    pre-selection of the keys). ``build`` is called once per process and
    database, as for :func:`select_one`.
    """
    # The model's write database, as QuerySet.update() (queryset.db names the
    # read one, a replica when the project's routers have one).
    using = router.db_for_write(model)
    returning = returning if returning and returns_from_update(using) else ()
    connection = connections[using]
    prepared = _prepared_for(
        "update", (key, returning), using, lambda c: _Update(*build(Slot), returning, using, c)
    )
    params = _bind(prepared.template, values, connection)
    # As QuerySet.update(): an error inside an atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
        cursor.execute(prepared.sql, params)
        if not returning:
            return cursor.rowcount, None
        rows = cursor.fetchall()
    if not rows:
        return 0, None
    row = _convert(rows[:1], prepared.converters, connection)[0]
    return len(rows), dict(zip(returning, row, strict=True))


class _Insert:
    def __init__(self, obj, using: str, connection):
        meta = obj._meta
        # As Model.save() inserting a new row: every concrete field but the auto pk.
        self.fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated]
        query = InsertQuery(type(obj))
        query.insert_values(self.fields, [obj])
        compiler = query.get_compiler(using)
        compiler.returning_fields = [meta.pk]
        [(self.sql, params)] = compiler.as_sql()
        if len(params) != len(self.fields):
            raise ValueError("prepared.insert(): %s has values that are SQL" % type(obj).__name__)
        self.returning_params = compiler.returning_params
        self.returns = connection.features.can_return_columns_from_insert
        self.converters = _converters(connection, [meta.pk.get_col(meta.db_table)])


def _fetch_returned_row(connection, cursor, returning_params) -> tuple:
    """The row an ``INSERT ... RETURNING`` just returned, as the ORM reads it (its name changed in Django 6.0)."""
    fetch_rows = getattr(connection.ops, "fetch_returned_rows", None)
    if fetch_rows is not None:  # Django 6.0 and later: a list of rows (bulk inserts share it)
        return fetch_rows(cursor, returning_params)[0]
    return connection.ops.fetch_returned_insert_columns(cursor, returning_params)


def insert(obj):
    """Insert the new model instance ``obj`` as ``obj.save(force_insert=True)`` would; set its pk; return it.

    The INSERT of the model's fields, compiled once per process and database
    (no value of it may be an expression). Through the ORM's ``save()`` when
    a receiver listens to the model's ``pre_save`` or ``post_save`` signal
    (the project's, which must still see the row saved).
    """
    model = type(obj)
    using = router.db_for_write(model)  # as Model.objects.create()
    if signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model):
        obj.save(force_insert=True, using=using)
        return obj
    connection = connections[using]
    prepared = _prepared_for("insert", model, using, lambda c: _Insert(obj, using, c))
    values = [field.pre_save(obj, True) for field in prepared.fields]
    if any(hasattr(value, "resolve_expression") for value in values):
        obj.save(force_insert=True, using=using)
        return obj
    params = [
        field.get_db_prep_save(v, connection=connection)
        for field, v in zip(prepared.fields, values, strict=True)
    ]
    with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
        cursor.execute(prepared.sql, params)
        if prepared.returns:
            row = _fetch_returned_row(connection, cursor, prepared.returning_params)
        else:
            meta = model._meta
            row = (connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column),)
    obj.pk = _convert([row], prepared.converters, connection)[0][0]
    obj._state.adding, obj._state.db = False, using
    return obj

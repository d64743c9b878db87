"""UPDATE ... RETURNING for the run path: a write that also tells what it wrote, in one statement.

Why (issue 17): every statement of the run path costs a round trip and, more
than that, Django's compiling of the query; and the end of a run needs to know
what its UPDATEs found (the report's skipped runs, the task's tokens of the
runs deferred behind this one), which used to cost a read before and one
after the end's transaction. Django's ORM has no UPDATE ... RETURNING, so
:func:`update_returning` lets Django compile the UPDATE of a queryset (its
SET and WHERE, expressions included, so that the rules stay in the models:
``Task.end_status``, ``dbclock.DbNow``) and appends ``RETURNING`` with the
columns' names from ``_meta``. The values come back through the fields'
converters, as the ORM would read them.

SQLite >= 3.35 and PostgreSQL have ``UPDATE ... RETURNING``; MySQL and
MariaDB (10.11 has ``INSERT``/``DELETE ... RETURNING`` only) do not: there
:func:`update_returning` returns None and the caller reads as it did before.
:func:`update` does either, for the caller that only wants the first row.
The statement runs in the caller's transaction, if any, on the model's write
database (:func:`taskmanager.db.write_db` for the run path's models).
"""

import sqlite3

from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery


def returns_from_update(using: str) -> bool:
    """Tell whether the database ``using`` has ``UPDATE ... RETURNING``."""
    vendor = connections[using].vendor
    if vendor == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 35)
    return vendor == "postgresql"


def update_returning(queryset: QuerySet, values: dict, fields: tuple[str, ...]) -> list[dict] | None:
    """Run ``queryset.update(**values)`` and return the updated rows' ``fields`` (their new values).

    One dict per updated row (an empty list: nothing matched). None, without
    updating anything, where the database has no ``UPDATE ... RETURNING``
    (:func:`returns_from_update`): the caller updates and reads apart.
    Only for an UPDATE of one table (a filter spanning a relation would need
    Django's pre-selection of the keys).
    """
    # The model's write database, as QuerySet.update() (queryset.db names the
    # read one, a replica when the project's routers have one).
    using = router.db_for_write(queryset.model)
    if not returns_from_update(using):
        return None
    connection = connections[using]
    query = queryset.query.chain(UpdateQuery)
    query.get_initial_alias()
    if query.count_active_tables() != 1:
        raise ValueError("update_returning() updates one table, not a join from %s" % queryset.model.__name__)
    query.add_update_values(values)
    query.annotations = {}  # as QuerySet.update(): none in subqueries
    sql, params = query.get_compiler(using).as_sql()
    meta = queryset.model._meta
    columns = [meta.get_field(name) for name in fields]
    sql += " RETURNING %s" % ", ".join(connection.ops.quote_name(field.column) for field in columns)
    converters = []
    for field in columns:
        col = field.get_col(meta.db_table)
        converters.append((col, connection.ops.get_db_converters(col) + col.get_db_converters(connection)))
    # As QuerySet.update(): an error inside an atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    result = []
    for row in rows:
        values_out = {}
        for name, value, (col, funcs) in zip(fields, row, converters, strict=True):
            for func in funcs:
                value = func(value, col, connection)
            values_out[name] = value
        result.append(values_out)
    return result


def update(queryset: QuerySet, values: dict, returning: tuple[str, ...] = ()) -> tuple[int, dict | None]:
    """Run ``queryset.update(**values)``; return the row count and the first updated row's ``returning`` fields.

    The row is None when nothing matched, when ``returning`` is empty, or
    where the database cannot return it (:func:`returns_from_update`): the
    caller then reads what it needs apart.
    """
    rows = update_returning(queryset, values, returning) if returning else None
    if rows is None:
        return queryset.update(**values), None
    return len(rows), (rows[0] if rows else None)

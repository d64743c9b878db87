"""Test-project middleware for the uWSGI server the tests start."""

from django.contrib.contenttypes.models import ContentType


class ClearContentTypeCacheMiddleware:
    """Drop the process's ContentType cache before each request.

    The tests flush the database between tests while the server keeps
    running; flush re-creates content types with new ids, so ids cached in a
    worker would point at deleted rows (admin LogEntry inserts then fail).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ContentType.objects.clear_cache()
        return self.get_response(request)


class CountSqlMiddleware:
    """Tell a request sent with the header ``X-TM-Count-SQL`` what it did to the database.

    The answer carries ``X-TM-Commits``: its durable commits (a write outside
    a transaction, or a transaction that wrote, committing), and ``X-TM-SQL``:
    its statements, each as its first word and table (``SELECT
    taskmanager_task``), ``|``-separated, ``BEGIN`` included. First in
    ``MIDDLEWARE``: the session and the user are counted too. Spool writes
    made on commit by the view are inside the request, so counted.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_X_TM_COUNT_SQL" not in request.META:
            return self.get_response(request)
        from django.db import DEFAULT_DB_ALIAS, connections

        connection = connections[DEFAULT_DB_ALIAS]
        seen = {"sql": [], "commits": 0, "pending": False}

        def count(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            seen["sql"].append(_statement(sql))
            if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE", "REPLAC"):
                if connection.in_atomic_block or not connection.get_autocommit():
                    seen["pending"] = True
                else:
                    seen["commits"] += 1
            return result

        def counted_commit():
            type(connection).commit(connection)
            if seen["pending"]:
                seen["commits"] += 1
                seen["pending"] = False

        connection.commit = counted_commit  # Atomic commits through connection.commit()
        try:
            with connection.execute_wrapper(count):
                response = self.get_response(request)
        finally:
            del connection.commit
        response["X-TM-Commits"] = str(seen["commits"])
        response["X-TM-SQL"] = "|".join(seen["sql"])
        return response


def _statement(sql: str) -> str:
    """``"VERB table"`` of a statement (the first quoted name after the verb), or the verb alone."""
    import re

    verb = sql.split(None, 1)[0].upper() if sql.strip() else ""
    table = re.search(r'[`"](\w+)[`"]', sql)
    return "%s %s" % (verb, table.group(1)) if table and verb != "BEGIN" else verb

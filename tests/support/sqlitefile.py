"""An SQLite database file of a test's own, read without Django, and who holds it open.

For tests of what processes do with the file itself (its ``-wal`` and
``-shm`` companions): the suite's other servers keep the test database open,
so such a test copies it (schema and rows) to a file only its own node uses.
"""

import os
import sqlite3
from contextlib import closing

from django.db import connection


def copy_test_database(path: str) -> str:
    """Copy the test database (as this test's transaction-free rows stand) to ``path``, in WAL mode."""
    connection.ensure_connection()
    with closing(sqlite3.connect(path)) as copy:
        connection.connection.backup(copy)
        copy.execute("PRAGMA journal_mode=WAL")
    return path


def query(path: str, sql: str, *params) -> list[tuple]:
    """Run ``sql`` on the database file ``path`` in a connection closed at once; return the rows."""
    with closing(sqlite3.connect(path, timeout=30)) as db:
        return db.execute(sql, params).fetchall()


def holders(path: str) -> dict[int, list[str]]:
    """Return {pid: [state, parent pid]} of the processes with a file descriptor on ``path`` or its companions."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            targets = [os.readlink("/proc/%s/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%s/fd" % pid)]
            if any(t.startswith(path) for t in targets):
                with open("/proc/%s/stat" % pid) as fh:
                    found[int(pid)] = fh.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue  # gone meanwhile
    return found

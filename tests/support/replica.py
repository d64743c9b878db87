"""A stale read replica of the test database: a second database with the rows of one moment.

``StaleReplica().create()`` makes an empty database (a file on SQLite, a
database of the same server on PostgreSQL and MariaDB); ``copy()`` copies
the test database into it (SQLite's backup API, ``pg_dump``, ``mysqldump``),
once: it is never updated after that, as a replica that lags. ``drop()``
removes it. A uWSGI node reads through it with
``settings={"READ_REPLICA": replica.name}`` (tests/settings.py,
tests/routers.py); this process has no alias for it.
"""

import os
import sqlite3
import subprocess

from django.db import connection


class StaleReplica:
    def __init__(self):
        self.settings = connection.settings_dict
        self.vendor = connection.vendor
        if self.vendor == "sqlite":
            self.name = str(self.settings["NAME"]) + ".replica"
        else:
            self.name = "%s_replica" % self.settings["NAME"]

    def create(self) -> "StaleReplica":
        self.drop()
        if self.vendor != "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE %s" % self.name)
        return self

    def copy(self) -> None:
        """Copy the test database, schema and rows, into the (empty) replica."""
        host, port, user = (
            self.settings["HOST"] or "127.0.0.1",
            str(self.settings["PORT"]),
            self.settings["USER"],
        )
        if self.vendor == "sqlite":
            source, target = sqlite3.connect(self.settings["NAME"]), sqlite3.connect(self.name)
            with target:
                source.backup(target)
            source.close()
            target.close()
        elif self.vendor == "postgresql":
            dump = ["pg_dump", "-h", host, "-p", port, "-U", user, self.settings["NAME"]]
            load = ["psql", "-q", "-h", host, "-p", port, "-U", user, "-d", self.name]
            _pipe(dump, load)
        else:
            dump = ["mysqldump", "-h", host, "-P", port, "-u", user, self.settings["NAME"]]
            load = ["mysql", "-h", host, "-P", port, "-u", user, self.name]
            _pipe(dump, load)

    def drop(self) -> None:
        if self.vendor == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.name + suffix):
                    os.unlink(self.name + suffix)
        else:
            with connection.cursor() as cursor:
                cursor.execute("DROP DATABASE IF EXISTS %s" % self.name)


def _pipe(dump: list, load: list) -> None:
    producer = subprocess.Popen(dump, stdout=subprocess.PIPE)
    subprocess.run(load, stdin=producer.stdout, check=True, stdout=subprocess.DEVNULL)
    producer.stdout.close()
    if producer.wait() != 0:
        raise RuntimeError("%s failed" % dump[0])

"""Another machine's clock for a uWSGI node: libfaketime, and the database server's own clock.

A node started with :func:`skewed_env` runs with its clock ahead (libfaketime,
Debian's ``libfaketime`` package, installed by ``.ci/run``) and a host name of
its own (``TM_TEST_HOSTNAME``, read by ``tests/settings.py``): to the other
nodes it is another machine whose clock is wrong.
"""

import glob
from datetime import UTC, datetime

from django.db import connection

#: Where Debian installs libfaketime (the multiarch directory varies).
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))


def skewed_env(seconds: int, hostname: str) -> dict:
    """The environment of a node whose clock is ``seconds`` ahead and whose host is ``hostname``.

    The monotonic clock is faked too (no ``DONT_FAKE_MONOTONIC``: with it
    Python's ``time.sleep()`` fails); file times are not (``NO_FAKE_STAT``):
    on a machine whose clock is wrong, the times written in a file's mtime
    (uWSGI's ``at``) are still the ones the program gave.
    """
    return {
        "LD_PRELOAD": LIBFAKETIME[0],
        "FAKETIME": "%+ds" % seconds,
        "FAKETIME_NO_CACHE": "1",
        "NO_FAKE_STAT": "1",
        "TM_TEST_HOSTNAME": hostname,
    }


def database_now() -> datetime:
    """The database server's clock (aware UTC), read by this test process."""
    sql = {
        "postgresql": "SELECT STATEMENT_TIMESTAMP()",
        "mysql": "SELECT UTC_TIMESTAMP(6)",
    }[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        value = cursor.fetchone()[0]
    return value if value.tzinfo else value.replace(tzinfo=UTC)

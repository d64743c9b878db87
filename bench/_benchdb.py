"""Set up Django on a fresh benchmark database (helper of the bench_* scripts).

``setup(db)`` with ``db`` "sqlite" or "postgresql" (or "mariadb") points the
test project's settings (``tests.settings``) at a database of its own, creates
it (an existing one is dropped first) and migrates it.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # for tests.support (the bench scripts put only bench/ on the path)

from tests.support import procs  # noqa: E402

BENCH_DB_NAME = "taskmanager_bench"


def setup(db: str, settings: str = "tests.settings") -> str:
    """Configure, create and migrate the benchmark database; return its name.

    ``settings`` is the settings module to load (``bench.settings`` adds the
    bench-only app and the run-path timing log to the test project's).
    """
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    os.environ["TM_TEST_DB"] = db
    if db == "sqlite":
        name = os.path.join(tempfile.gettempdir(), "%s-%d.sqlite3" % (BENCH_DB_NAME, os.getpid()))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(name + suffix):
                os.unlink(name + suffix)
    else:
        name = "%s_%d" % (BENCH_DB_NAME, os.getpid())
    os.environ["TM_TEST_SERVER_DB"] = name
    import django

    django.setup()
    from django.db import connection

    if db != "sqlite":
        # Create the database through the server's default maintenance database.
        with connection._nodb_cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS %s" % name)
            cursor.execute("CREATE DATABASE %s" % name)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return name


def teardown(db: str, name: str) -> None:
    """Drop the benchmark database."""
    from django.db import connection, connections

    connections.close_all()
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(name + suffix):
                os.unlink(name + suffix)
        return
    with connection._nodb_cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS %s" % name)


def memory_kib(pid: int | str = "self", field: str = "VmHWM") -> int:
    """Return a /proc/<pid>/status memory field (VmRSS, VmHWM) in KiB, or 0."""
    return procs.vm_kib(pid, field) or 0


def reset_peak(pid: int | str = "self") -> bool:
    """Reset VmHWM of ``pid`` to its current RSS (Linux >= 4.0); return whether it worked."""
    return procs.reset_peak(pid)

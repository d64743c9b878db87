"""Helpers shared by the bench scripts: the common command line, a fresh database,
a real uWSGI serving the bench project, statistics and output.

The interface every ``bench/bench_*.py`` follows (``bench/run.py`` relies on it):

* ``main(argv=None)``; run as ``python bench/bench_x.py [--quick] [--db sqlite|postgresql]``;
  ``bench/run.py`` passes ``--quick`` and ``--db`` only to a script whose own text names
  them, so its docstring's usage line must (also when the options come from here);
* print a human-readable table, then exactly one JSON object on the last line
  of stdout (``emit()`` does both);
* nothing asserts: numbers only (targets are printed beside them).

The uWSGI server is the one the tests start (``tests.support.uwsgi_server.UwsgiServer``),
loading ``bench.settings`` instead of ``tests.settings``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(1, str(BENCH_DIR))

from tests.support import sqlcount  # noqa: E402
from tests.support.adminclient import AdminClient  # noqa: E402
from tests.support.uwsgi_server import UwsgiServer  # noqa: E402

SETTINGS = "bench.settings"
PASSWORD = "bench-password"
#: Used when no shipped configuration names a spooler-frequency (the tests' value).
DEFAULT_SPOOLER_FREQUENCY = 1


def parser(description: str) -> argparse.ArgumentParser:
    """Return an ArgumentParser with the options every bench script accepts."""
    result = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    result.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    result.add_argument(
        "--db", default="sqlite", choices=["sqlite", "postgresql"], help="database (default sqlite)"
    )
    result.add_argument("--keep", action="store_true", help="keep the database and the work directory")
    return result


def _writable_dir(value: str) -> str:
    """``--spool-dir``'s value as an absolute path (uWSGI runs in another directory), if a writable directory."""
    path = os.path.abspath(value) if value else ""
    if not path or not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError("%r is not a directory this user can write in" % value)
    return path


def add_spool_dir_option(options: argparse.ArgumentParser) -> None:
    """``--spool-dir DIR``: the servers' spool directories made in DIR (see :meth:`BenchEnv.start_server`)."""
    options.add_argument(
        "--spool-dir",
        metavar="DIR",
        type=_writable_dir,
        help="make each server's spool directory in DIR (e.g. a tmpfs such as /dev/shm) "
        "instead of its temporary directory",
    )


def spool_line(server: UwsgiServer, indent: str = "") -> dict:
    """Where the server's spool directory is, its file system, and what a file costs there: print and return it.

    Call it after what it measures: on ext4 without a journal the probe's
    deleted files slow the creation of the next ones for 30 seconds.
    """
    spool = {
        "dir": str(server.spool_dir),
        "filesystem": filesystem_type(server.spool_dir),
        "file_cost_us": round(file_cost_us(server.spool_dir), 1),
    }
    print(
        indent + "spool directory %(dir)s (%(filesystem)s): a file created, written and deleted there"
        " costs %(file_cost_us).0f us of CPU (as a Start's spool file, deleted by the spooler)" % spool
    )
    return spool


def log_parser(description: str) -> argparse.ArgumentParser:
    """Return an ArgumentParser with the options of the in-process log benches (capture, viewer).

    They run on the test project's settings in this process (no uWSGI), so
    ``--db`` also accepts mariadb. Parse with ``parse_log_args()``.
    """
    result = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    result.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql", "mariadb"])
    result.add_argument("--lines", type=int, default=None, help="default 1,000,000 (100,000 with --quick)")
    result.add_argument("--quick", action="store_true", help="smaller counts (bench/run.py --quick)")
    result.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return result


def parse_log_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse a ``log_parser()`` command line; ``--lines`` defaults to 1,000,000 (100,000 with --quick)."""
    args = parser.parse_args(argv)
    if args.lines is None:
        args.lines = 100_000 if args.quick else 1_000_000
    return args


def shipped_spooler_frequency() -> tuple[int, str]:
    """Return (seconds, where it came from): the demo's uwsgi ini if it sets one, else the default."""
    for path in sorted((ROOT / "demo").rglob("*.ini")):
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "spooler-frequency" and value.strip().isdigit():
                return int(value.strip()), str(path.relative_to(ROOT))
    return DEFAULT_SPOOLER_FREQUENCY, "default (tests' value; no demo ini sets it)"


#: The names of the spool directories start_server(spool_base=...) makes (and stop_server() removes).
SPOOL_PREFIX = "tm-bench-spool-"
#: "0" in a server's environment: no timing log (``bench/settings.py``).
TIMING_ENV = "TM_BENCH_TIMING"


class BenchEnv:
    """A fresh database (migrated, commands collected, a superuser) and a work directory.

    Sets the environment that the bench process and the servers it starts share:
    ``TM_TEST_DB``, ``TM_TEST_SERVER_DB`` (the database), ``TM_BENCH_DIR`` (timing
    log, floor log), ``TM_SQL_COUNT_DIR`` (the same directory: commit and statement
    counters, :mod:`tests.support.sqlcount`) and ``DJANGO_SETTINGS_MODULE``.
    """

    def __init__(self, db: str, keep: bool = False):
        self.db = db
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix="tm-bench-"))
        os.environ["TM_BENCH_DIR"] = os.environ["TM_SQL_COUNT_DIR"] = str(self.dir)
        import _benchdb

        self.name = _benchdb.setup(db, settings=SETTINGS)
        from django.contrib.auth.models import User

        from taskmanager.management.commands.collect_commands import collect

        collect(exclude_core=True)
        User.objects.create_superuser("bench", "bench@example.com", PASSWORD)
        self.servers: list[UwsgiServer] = []

    def server_env(self, instrumented: bool = True) -> dict:
        """The environment of the bench's servers; ``instrumented``: with the statement counters and the timing log.

        Both cost the processes they count a little CPU (a Python execute
        wrapper around every statement, a JSON line per run): a bench that
        reads neither (``bench_throughput.py``, whose figure is the CPU a
        user's deployment pays per run) starts its servers without them.
        """
        env = {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "TM_TEST_DB": self.db,
            "TM_TEST_SERVER_DB": self.name,
            "TM_BENCH_DIR": str(self.dir),
            "TM_SQL_COUNT_DIR": str(self.dir),
        }
        if not instrumented:
            env[sqlcount.DIR_ENV] = ""  # neither app (tests/testapp, bench/benchapp) installs a counter
            env[TIMING_ENV] = "0"  # bench/settings.py configures no timing log
        return env

    def start_server(
        self,
        spooler_processes: int = 2,
        spooler_frequency: int | None = None,
        instrumented: bool = True,
        spool_base: str | None = None,
    ) -> UwsgiServer:
        """Start a uWSGI (2 workers, ``spooler_processes`` spoolers) on the bench database (see :meth:`server_env`).

        ``spool_base``: the directory in which its spool directory is made
        (removed with the server), instead of the server's temporary directory.
        """
        frequency = spooler_frequency or shipped_spooler_frequency()[0]
        spool_dir = tempfile.mkdtemp(prefix=SPOOL_PREFIX, dir=spool_base) if spool_base else None
        if spool_dir:
            atexit.register(shutil.rmtree, spool_dir, True)  # if the bench ends without stop_server()
        server = UwsgiServer(
            spool_dir=spool_dir,
            env=self.server_env(instrumented),
            spooler_processes=spooler_processes,
            # As the shipped demo/uwsgi.ini: no log line per request.
            extra_args=["--spooler-frequency", str(frequency), "--disable-logging", "--log-4xx", "--log-5xx"],
        )
        self.servers.append(server)
        server.start()
        # Let every spooler finish its start-up (recovery, heartbeat) before measuring.
        wait_for(lambda: len(server.spooler_pids()) >= spooler_processes, 30, "spoolers")
        time.sleep(0.3)
        return server

    def stop_server(self, server: UwsgiServer) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)
        if server.spool_dir.name.startswith(SPOOL_PREFIX):  # made by start_server(spool_base=...)
            shutil.rmtree(server.spool_dir, ignore_errors=True)

    def admin(self, server: UwsgiServer) -> AdminClient:
        client = AdminClient(server.url)
        client.login("bench", PASSWORD)
        return client

    def timing_lines(self) -> list[dict]:
        """Return the runs logged so far on ``taskmanager.runner.timing``, oldest first."""
        path = self.dir / "timing.log"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
        return rows

    def timing_count(self) -> int:
        path = self.dir / "timing.log"
        if not path.exists():
            return 0
        with open(path, "rb") as fh:
            return fh.read().count(b"\n")

    def counts(self) -> dict:
        from tests.support.sqlcount import read_counts

        return read_counts(self.dir)

    def close(self) -> None:
        for server in list(self.servers):
            self.stop_server(server)
        if self.keep:
            print("kept: database %s, work directory %s" % (self.name, self.dir), file=sys.stderr)
            return
        import _benchdb

        _benchdb.teardown(self.db, self.name)
        shutil.rmtree(self.dir, ignore_errors=True)


def filesystem_type(path) -> str:
    """The type of the file system ``path`` lies on (``ext4``, ``tmpfs``...), from ``/proc/self/mounts``."""
    path, best, kind = os.path.realpath(path), "", "?"
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1].replace("\\040", " ")
                if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def file_cost_us(directory, count: int = 300) -> float:
    """CPU microseconds to create, write (200 bytes), close and delete one file in ``directory``, as a spool entry does.

    On most file systems some microseconds; on ext4 without a journal
    (this kind of virtual machine's root) the creation skips every inode
    deleted in the last 30 seconds, and costs up to a millisecond while
    runs delete their spool files by the thousand.
    """
    names = [os.path.join(directory, ".tm-bench-probe-%d-%d" % (os.getpid(), i)) for i in range(count)]
    started = time.process_time()
    for name in names:
        fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.write(fd, b"x" * 200)
        os.close(fd)
        os.unlink(name)
    return (time.process_time() - started) * 1e6 / count


WORKER_RE = re.compile(r"spawned uWSGI worker \d+ \(pid: (\d+)")


def worker_pids(server: UwsgiServer) -> list[int]:
    """Return the pids of the server's web workers (from its log)."""
    return [int(p) for p in WORKER_RE.findall(server.log())]


def cpu_seconds(pids) -> float:
    """Return the CPU time (user + system, seconds) used so far by ``pids``, their descendants and reaped children.

    The children's part covers the command processes a spooler forks and
    reaps; the live descendants, a spooler's fork server (which forks and
    reaps the commands itself) and whatever runs now. Unreadable (gone)
    processes count 0.
    """
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, "rb") as fh:
                    stats[int(name)] = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
    kids: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        kids.setdefault(int(fields[1]), []).append(pid)
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        # utime, stime, cutime, cstime are fields 14-17 (1-based) of stat.
        total += sum(int(v) for v in stats[pid][11:15])
        todo.extend(kids.get(pid, ()))
    return total / tick


def wait_for(predicate, timeout: float, what: str, interval: float = 0.005):
    """Poll ``predicate`` until truthy; return its value or raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


# -- statistics -----------------------------------------------------------------
def percentile(values, pct: float) -> float | None:
    """Return the ``pct`` percentile (0-100, nearest rank) of ``values``, or None if empty."""
    data = sorted(values)
    if not data:
        return None
    rank = max(1, math.ceil(pct / 100 * len(data)))
    return data[rank - 1]


def summary(values) -> dict:
    """Return {n, median, p95, max, min} of ``values`` (None when empty)."""
    data = list(values)
    if not data:
        return {"n": 0, "median": None, "p95": None, "max": None, "min": None}
    return {
        "n": len(data),
        "median": statistics.median(data),
        "p95": percentile(data, 95),
        "max": max(data),
        "min": min(data),
    }


def rounded(value, digits: int = 2):
    """Round floats (also inside dicts and lists) for printing and JSON."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


# -- output ---------------------------------------------------------------------
def new_results(args, bench: str, *, frequency: bool = False, **fields) -> dict:
    """Return the result dict a bench fills: its name, ``--db``, ``--quick``, then ``fields``.

    ``frequency``: also the shipped spooler-frequency and where it came from
    (``spooler_frequency_s``, ``spooler_frequency_source``; see ``settings_line``).
    """
    results = {"bench": bench, "db": args.db, "quick": args.quick}
    if frequency:
        seconds, source = shipped_spooler_frequency()
        results["spooler_frequency_s"] = seconds
        results["spooler_frequency_source"] = source
    results.update(fields)
    return results


def settings_line(results: dict) -> str:
    """Return "db=..., spooler-frequency=... s (source)" for a bench's first line (``--quick`` said too)."""
    return "db=%s%s, spooler-frequency=%s s (%s)" % (
        results["db"],
        " (quick)" if results["quick"] else "",
        results["spooler_frequency_s"],
        results["spooler_frequency_source"],
    )


def finish(results: dict, started: float) -> dict:
    """Add the bench's duration (since ``started``, monotonic) and the load average, emit; return ``results``."""
    results["seconds"] = time.monotonic() - started
    results["load_average"] = os.getloadavg()[0]
    emit(results)
    return results


def verdict(value, target, smaller_is_better: bool = True) -> str:
    if value is None or target is None:
        return ""
    ok = value <= target if smaller_is_better else value >= target
    return "ok" if ok else "MISSED"


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """Print ``rows`` under ``header`` as an aligned text table."""
    cells = [[_cell(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print()
    print(title)
    print("  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.2f" % value
    return str(value)


def emit(result: dict) -> None:
    """Print the one JSON line of a bench script (the last line of its stdout)."""
    print()
    print(json.dumps(rounded(result, 3), sort_keys=True))
    sys.stdout.flush()

"""Start a real uWSGI server (HTTP on a loopback port, a spooler) for the tests and the benchmarks."""

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from .procs import gone
from .waits import wait_for

ROOT = Path(__file__).resolve().parents[2]
BOUND_RE = re.compile(rb"bound to TCP address 127\.0\.0\.1:(\d+)")
SPOOLER_RE = re.compile(r"spawned the uWSGI spooler on dir \S+ with pid (\d+)")


def uwsgi_binary() -> str:
    candidate = Path(sys.executable).with_name("uwsgi")
    return str(candidate) if candidate.exists() else "uwsgi"


def node_env(settings=None) -> dict:
    """The environment of a uWSGI on the test database (pytest-django's), with Django ``settings``.

    ``settings`` ({name: value}) overrides the test settings (as TM_TEST_SETTINGS).
    """
    from django.conf import settings as django_settings

    env = {"TM_TEST_SERVER_DB": str(django_settings.DATABASES["default"]["NAME"])}
    if settings:
        env["TM_TEST_SETTINGS"] = json.dumps(settings)
    return env


def _drop_options(args: list, names) -> list:
    """Return ``args`` without the options in ``names`` (each with its value, if it has one)."""
    kept, skip_value = [], False
    for arg in args:
        if skip_value and not arg.startswith("--"):
            skip_value = False
            continue
        skip_value = arg in names
        if not skip_value:
            kept.append(arg)
    return kept


class UwsgiServer:
    """A uWSGI instance serving ``tests.wsgi`` with ``spooler_processes`` spoolers.

    ``env`` is added to the environment (e.g. the database name). ``http``
    False starts a spooler-only node; ``spooler_processes=0`` a web-only node
    (no ``--spooler``: add ``--spooler-external DIR`` with ``extra_args`` to
    let it write spool files for another node). ``drop_args`` names default
    options to leave out, e.g. ``("--die-on-term",)``. Stop it with ``stop()``.
    """

    def __init__(self, env=None, spooler_processes=2, http=True, extra_args=(), spool_dir=None, drop_args=()):
        self.workdir = Path(tempfile.mkdtemp(prefix="tm-uwsgi-"))
        # Kept while the test process runs (a later server may reuse its spool dir).
        atexit.register(shutil.rmtree, self.workdir, True)
        self.spool_dir = Path(spool_dir) if spool_dir else self.workdir / "spool"
        self.spool_dir.mkdir(exist_ok=True)
        self.log_path = self.workdir / "uwsgi.log"
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})}
        args = [
            uwsgi_binary(),
            "--master",
            "--strict",
            "--die-on-term",
            "--need-app",
            "--module", "tests.wsgi:application",
            "--pythonpath", str(ROOT),
            "--chdir", str(ROOT),
            "--processes", "2",
            "--threads", "2",
            "--logto", str(self.log_path),
        ]
        if spooler_processes:
            args += [
                "--spooler", str(self.spool_dir),
                "--spooler-processes", str(spooler_processes),
                "--spooler-frequency", "1",
                "--spooler-chdir", str(ROOT),
            ]
        if http:
            args += ["--http-socket", "127.0.0.1:0"]
        self.args = _drop_options(args, drop_args) + list(extra_args)
        self.http = http
        self.has_spooler = bool(spooler_processes)
        self.proc = None
        self.port = None
        #: An AdminClient logged in as the superuser, when the tests' ``uwsgi_node`` fixture made one.
        self.admin = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout=60.0):
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=str(ROOT), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("uWSGI exited with %s:\n%s" % (self.proc.returncode, self.log()))
            data = self.log_path.read_bytes() if self.log_path.exists() else b""
            if self.http and self.port is None:
                match = BOUND_RE.search(data)
                if match:
                    self.port = int(match.group(1))
            spooler_ready = not self.has_spooler or b"spawned the uWSGI spooler" in data
            return spooler_ready and (not self.http or self._http_ready())

        try:
            wait_for(ready, timeout=timeout, message="uWSGI to be ready")
        except AssertionError:
            self.stop()
            raise RuntimeError("uWSGI did not become ready:\n" + self.log()) from None
        return self

    def _http_ready(self) -> bool:
        if self.port is None:
            return False
        try:
            with urllib.request.urlopen(self.url + "/admin/login/", timeout=2) as resp:
                return resp.status == 200
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"; the caller retries
            return False

    def spooler_pids(self) -> list[int]:
        """Return the pids of the spooler processes spawned so far (from the log)."""
        return [int(p) for p in SPOOLER_RE.findall(self.log())]

    def stop(self):
        if self.proc is None:
            return
        pid = self.proc.pid
        try:
            os.killpg(pid, signal.SIGINT)
            # An operator's stop: the master kills the spoolers at once (their
            # runs are cut). The master itself then waits for the workers'
            # Python to finalize and reaps them at its next once-a-second
            # cycle, a second per stop for nothing any test can observe: the
            # SIGKILL below ends them once the spoolers are gone.
            spoolers = self.spooler_pids()
            wait_for(
                lambda: self.proc.poll() is not None or all(gone(p) for p in spoolers),
                timeout=5,
                interval=0.02,
                message="the spoolers to end",
            )
        except (ProcessLookupError, AssertionError):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

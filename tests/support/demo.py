"""The demo (demo/) prepared and served as ``make demo`` does it, by a given Python (tests/test_demo.py).

:func:`served_demo` copies demo/ (without var/) into a temporary directory,
runs make demo's steps there with ``python`` (migrate, collectstatic,
collect_commands, demo_setup.py) and serves it with that Python's uWSGI
under the demo's own uwsgi.ini, on a free port; this checkout's
``taskmanager`` is imported whatever the virtualenv has installed.

:func:`django6_python` is the Python of the virtualenv ``make demo`` makes
where the machine has a Python 3.12 or later (``demo/demo_venv.py``, Django
6.1): built on first use in ``.venv-demo`` at the repository root (or
``TM_DEMO_VENV``), reused afterwards, shared with ``make demo``. So the
test suite's own virtualenv (Django 5.2) still serves the demo on Django 6.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from .procs import free_port
from .waits import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
#: demo_venv.py's exit status when the machine has no Python >= 3.12.
NO_DJANGO6 = 3


def django6_python() -> tuple[str | None, str]:
    """(the Django 6 demo virtualenv's python, "") or (None, why there is none on this machine)."""
    venv = Path(os.environ.get("TM_DEMO_VENV") or ROOT / ".venv-demo")
    done = subprocess.run(
        [sys.executable, str(DEMO / "demo_venv.py"), str(venv), "--require-django6"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode == NO_DJANGO6:
        return None, done.stderr.strip()
    assert done.returncode == 0, done.stdout + done.stderr
    return str(venv / "bin" / "python"), ""


def demo_step(copy: Path, python: str, argv: list[str], env: dict | None = None) -> str:
    """Run ``python argv`` in the demo copy ``copy`` (e.g. ``manage.py shell -c ...``); return its stdout."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DEMO_VAR_DIR")}
        env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([python, *argv], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextlib.contextmanager
def served_demo(tmp_path: Path, python: str):
    """Prepare a copy of demo/ (``tmp_path / "demo"``) with ``python``, serve it with its uWSGI; yield the URL."""
    copy = tmp_path / "demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns("var", "__pycache__"))
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DEMO_ADMIN_PASSWORD", "DEMO_VAR_DIR", "VIRTUAL_ENV")
    }
    env.update(DEMO_PORT=str(port), PYTHONPATH=str(ROOT))
    for step in (
        ["manage.py", "migrate", "--noinput", "-v0"],
        ["manage.py", "collectstatic", "--noinput", "-v0"],
        ["manage.py", "collect_commands", "--excludecore", "-v0"],
        ["demo_setup.py", "--port", str(port)],
    ):
        demo_step(copy, python, step, env)
    log_path = tmp_path / "uwsgi.log"
    uwsgi = Path(python).with_name("uwsgi")
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(uwsgi) if uwsgi.exists() else "uwsgi", "--ini", "uwsgi.ini"],
            cwd=copy,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = "http://127.0.0.1:%d" % port

    def answers():
        assert server.poll() is None, log_path.read_text(errors="replace")
        try:
            with urllib.request.urlopen(base + "/admin/login/", timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        wait_for(answers, timeout=120, message="the demo's uWSGI to answer")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGINT)  # die-on-term: it stops
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

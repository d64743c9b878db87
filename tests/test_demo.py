"""The demo's preparation script (demo/demo_setup.py), run as ``make demo`` runs it.

Each step is a fresh process on the demo's settings, with its database in a
temporary directory (DEMO_VAR_DIR) instead of demo/var/.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .support.procs import free_port

DEMO = Path(__file__).resolve().parent.parent / "demo"


@pytest.fixture
def demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DEMO_ADMIN_PASSWORD")}
    env["DEMO_VAR_DIR"] = str(tmp_path)

    def run(*args, password=None):
        step_env = dict(env)
        if password is not None:
            step_env["DEMO_ADMIN_PASSWORD"] = password
        done = subprocess.run(
            [sys.executable, *args], cwd=DEMO, env=step_env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run("manage.py", "migrate", "--noinput", "-v0")
    run("manage.py", "collect_commands", "--excludecore", "-v0")
    run.database = tmp_path / "demo.sqlite3"
    return run


def admin_password_hash(database) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("select password from auth_user where username = 'admin'").fetchone()[0]


def test_demo_setup_sets_the_password_only_when_asked(demo):
    port = str(free_port())
    first = demo("demo_setup.py", "--port", port)
    assert "Created the superuser 'admin'." in first and "password: admin" in first
    assert "Created the example task 'Refresh the cache'." in first
    created = admin_password_hash(demo.database)

    # Started again: the password (maybe changed in the admin since) and
    # with it the open sessions stay; the example tasks are left alone.
    again = demo("demo_setup.py", "--port", port)
    assert "its password is left as it is" in again and "password: unchanged" in again
    assert "Example task 'Refresh the cache' exists, left as it is." in again
    assert admin_password_hash(demo.database) == created

    # The same password given explicitly changes nothing either ...
    same = demo("demo_setup.py", "--port", port, password="admin")
    assert "password: admin" in same
    assert admin_password_hash(demo.database) == created

    # ... another one is set.
    other = demo("demo_setup.py", "--port", port, password="s3cret")
    assert "Set the password of the superuser 'admin'." in other and "password: s3cret" in other
    assert admin_password_hash(demo.database) != created

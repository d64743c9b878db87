"""The demo, prepared and served as ``make demo`` does it.

Each step is a fresh process on the demo's settings, with its database in a
temporary directory (DEMO_VAR_DIR) instead of demo/var/; the served demo is
a copy of demo/ in a temporary directory, under its own uwsgi.ini.
"""

import html
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .support.adminclient import AdminClient, form_errors
from .support.procs import free_port
from .support.uwsgi_server import uwsgi_binary
from .support.waits import wait_for

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
#: The argument example of the user guide (/work/shared/spec/users_admin_gui.rst, docs/arguments.rst).
GUIDE_ARGUMENTS = "-f, --secondarg param1 param2, --thirdarg=pippo, --thirdarg"


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


@pytest.fixture
def demo_server(tmp_path):
    """A copy of demo/ prepared by make demo's steps and served by its uwsgi.ini; yields its URL."""
    copy = tmp_path / "demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns("var", "__pycache__"))
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DEMO_ADMIN_PASSWORD", "DEMO_VAR_DIR")
    }
    # This checkout's taskmanager, whatever the virtualenv has installed.
    env.update(DEMO_PORT=str(port), PYTHONPATH=str(ROOT))
    for step in (
        ["manage.py", "migrate", "--noinput", "-v0"],
        ["manage.py", "collectstatic", "--noinput", "-v0"],
        ["manage.py", "collect_commands", "--excludecore", "-v0"],
        ["demo_setup.py", "--port", str(port)],
    ):
        done = subprocess.run(
            [sys.executable, *step], cwd=copy, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    log_path = tmp_path / "uwsgi.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [uwsgi_binary(), "--ini", "uwsgi.ini"],
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


def task_result(client, task_id):
    """The result badge of a task's page once its run has ended, else None."""
    page = client.get("/admin/taskmanager/task/%s/change/" % task_id).text
    found = re.search(r'class="tm-live-result" data-task="\d+"><span class="tm-badge tm-\w+">(\w+)<', page)
    return found and found.group(1)


def test_the_demo_runs_the_guide_s_argument_example_and_serves_a_favicon(demo_server):
    # Browsers ask for /favicon.ico on every page: no 404, an icon.
    with urllib.request.urlopen(demo_server + "/favicon.ico", timeout=10) as resp:
        assert resp.status == 200 and resp.url.endswith("/static/demoapp/favicon.ico"), resp.url
        assert resp.headers["Content-Type"].startswith("image/"), resp.headers["Content-Type"]
        assert resp.read(4) == b"\x00\x00\x01\x00"  # an ICO file

    client = AdminClient(demo_server)
    client.login("admin", "admin")
    listing = client.get("/admin/taskmanager/task/").text
    assert "Try the guide&#x27;s arguments" in listing, listing[-3000:]

    # The task form checks the arguments against the command's parser: the
    # guide's example is accepted, a --secondarg without a value is not.
    add = client.get("/admin/taskmanager/task/add/").text
    command = re.search(r'<option value="(\d+)">demo_arguments \(demoapp\)</option>', add).group(1)
    form = {"command": command, "note": "", "reports-TOTAL_FORMS": "0", "reports-INITIAL_FORMS": "0"}
    refused = client.post(
        "/admin/taskmanager/task/add/", {**form, "name": "bad", "arguments": "--secondarg", "_save": "Save"}
    )
    assert "/add/" in refused.url and "secondarg" in form_errors(refused), form_errors(refused)
    saved = client.post(
        "/admin/taskmanager/task/add/",
        {**form, "name": "guide example", "arguments": GUIDE_ARGUMENTS, "_continue": "Save"},
    )
    found = re.search(r"/admin/taskmanager/task/(\d+)/change/", saved.url)
    assert found, form_errors(saved)
    task_id = found.group(1)
    started = html.unescape(client.post("/admin/taskmanager/task/%s/start/" % task_id).text)
    assert "was started" in started, started[-3000:]
    assert wait_for(lambda: task_result(client, task_id), timeout=120, message="the run's end") == "OK"
    page = html.unescape(client.get("/admin/taskmanager/task/%s/change/" % task_id).text)
    for line in ("flag = True", "secondarg = ['param1', 'param2']", "thirdarg = ['pippo', None]"):
        assert line in page, line


def test_the_demo_admin_follows_the_browser_s_language(demo_server):
    """The demo's admin is translated: a browser asking for Italian gets the Italian login page."""
    request = urllib.request.Request(demo_server + "/admin/login/", headers={"Accept-Language": "it"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        page = html.unescape(resp.read().decode())
    assert '<html lang="it"' in page and "Nome utente" in page and 'value="Accedi"' in page, page[:3000]

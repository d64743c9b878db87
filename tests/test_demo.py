"""The demo, prepared and served as ``make demo`` does it.

Each step is a fresh process on the demo's settings, with its database in a
temporary directory (DEMO_VAR_DIR) instead of demo/var/; the served demo is
a copy of demo/ in a temporary directory, under its own uwsgi.ini
(``tests/support/demo.py``). The demo is served twice over: by this suite's
Python (Django 5.2 with the django-tasks backport in ``make test``), and on
Django 6.1 by the virtualenv ``make demo`` makes where the machine has a
Python 3.12 or later (``demo/demo_venv.py``; made on first use, then shared
with ``make demo``): on both its django.tasks part runs, a ``@task``
function enqueued from the admin, its result SUCCESSFUL in *Task results*.
"""

import html
import os
import re
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .support.adminclient import AdminClient, form_errors
from .support.demo import demo_step, django6_python, served_demo
from .support.procs import free_port
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
    """The demo served by this suite's Python (Django 5.2 in ``make test``); yields its URL."""
    with served_demo(tmp_path, sys.executable) as base:
        yield base


@pytest.fixture(scope="module")
def django6_demo_python():
    """The Python of make demo's Django 6 virtualenv (made on first use, as make demo makes it)."""
    python, why = django6_python()
    if python is None:
        pytest.skip("the demo runs Django 6 where a Python >= 3.12 is found; here: " + why)
    return python


@pytest.fixture
def django6_demo(tmp_path, django6_demo_python):
    """The demo served on Django 6.1 by make demo's virtualenv, as ``make demo`` serves it; yields its URL."""
    with served_demo(tmp_path, django6_demo_python) as base:
        yield base


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


TRY_PAGE = "/admin/demoapp/trydjangotasks/"
RESULT_PAGE_RE = re.compile(r"/admin/taskmanager/djangotaskresult/(\w+)/change/$")


def enqueue_from_the_admin(client, data) -> str:
    """POST the demo's Try django.tasks form; return the result's page it redirects to (which says so)."""
    resp = client.post(TRY_PAGE, data, follow=False)
    assert resp.status == 302, form_errors(resp) or resp.text[-3000:]
    assert RESULT_PAGE_RE.search(resp.url), resp.url
    page = urllib.parse.urlsplit(resp.url).path
    landed = html.unescape(client.get(page).text)
    assert "Enqueued %s: a spooler runs it" % data["function"] in landed, landed[-3000:]
    return page


def successful_page(client, page: str) -> str:
    """Wait until the result's page shows it Successful (reloading it, as a person would); return the page."""

    def ended():
        text = html.unescape(client.get(page).text)
        found = re.search(r'<span class="tm-badge tm-(\w+)">', text)
        return text if found and found.group(1) in ("ok", "failed") else None

    text = wait_for(ended, timeout=120, message="the demo function's result")
    assert '<span class="tm-badge tm-ok">Successful</span>' in text, text[-4000:]
    return text


def test_the_demo_on_django_6_enqueues_its_task_functions_from_the_admin(django6_demo):
    client = AdminClient(django6_demo)
    client.login("admin", "admin")
    index = client.get("/admin/").text
    assert TRY_PAGE in index and "Try django.tasks" in index, index[-3000:]
    page = client.get(TRY_PAGE).text
    assert "Enqueue daily_report()" in page and "Enqueue count_words(text, top)" in page, page[-3000:]

    # A form without Django's CSRF token enqueues nothing; neither does a wrong top.
    assert client.post(TRY_PAGE, {"function": "daily_report"}, follow=False, csrf=False).status == 403
    refused = client.post(TRY_PAGE, {"function": "count_words", "text": "a b", "top": "0"})
    assert refused.status == 200 and "needs a text and a number from 1 to 20" in refused.text
    assert "tm-badge" not in client.get("/admin/taskmanager/djangotaskresult/").text

    # The function without arguments: enqueued, run by a spooler of the demo, its result and log in the admin.
    report = successful_page(client, enqueue_from_the_admin(client, {"function": "daily_report"}))
    assert "demoapp.tasks.daily_report" in report, report[-4000:]
    assert '"failed_runs": 0' in report, report[-4000:]
    log_url = re.search(r'href="(/admin/taskmanager/report/\d+/log/)"', report).group(1)
    log = html.unescape(client.get(log_url).text)
    for line in ("Counting the task manager", "No run ended FAILED", "Printed lines are captured too."):
        assert line in log, (line, log[-4000:])

    # The function with arguments: what the form gave, and what it returned.
    words = successful_page(
        client,
        enqueue_from_the_admin(client, {"function": "count_words", "text": "b a b c b a", "top": "2"}),
    )
    assert '"b a b c b a"' in words and '"top": 2' in words, words[-4000:]
    assert re.search(r'"most_common": \[\s*\[\s*"b",\s*3\s*\],\s*\[\s*"a",\s*2\s*\]\s*\]', words), words[
        -4000:
    ]
    listing = client.get("/admin/taskmanager/djangotaskresult/").text
    assert listing.count('<span class="tm-badge tm-ok">') == 2, listing[-4000:]


def test_the_demo_served_by_this_suite_s_python_enqueues_too_or_says_what_is_missing(demo_server):
    """On Django 5.2 (``make test``) the demo's functions run on the django-tasks backport (the test extra)."""
    from taskmanager.djangotasks import api

    client = AdminClient(demo_server)
    client.login("admin", "admin")
    if api.SOURCE is None:
        page = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(client.get(TRY_PAGE).text)).split())
        assert "This part of the demo needs the django.tasks API" in page, page[-3000:]
        # A POST enqueues nothing there: the same page, no redirect.
        assert client.post(TRY_PAGE, {"function": "daily_report"}, follow=False).status == 200
        return
    page = enqueue_from_the_admin(client, {"function": "count_words", "text": "x y x", "top": "1"})
    words = successful_page(client, page)
    assert re.search(r'"most_common": \[\s*\[\s*"x",\s*2\s*\]\s*\]', words), words[-4000:]


def test_the_demo_s_django_tasks_page_is_for_who_may_run_function_runs(demo_server, tmp_path):
    """A staff user with every permission of the app, while function runs are for superusers only: no page."""
    demo_step(
        tmp_path / "demo",
        sys.executable,
        [
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import Permission, User; "
            "u = User.objects.create_user('staff', password='pw', is_staff=True); "
            "u.user_permissions.set(Permission.objects.filter(content_type__app_label__in=['taskmanager', 'demoapp']))",
        ],
    )
    client = AdminClient(demo_server)
    client.login("staff", "pw")
    assert TRY_PAGE not in client.get("/admin/").text
    assert client.get(TRY_PAGE).status == 403
    assert client.post(TRY_PAGE, {"function": "daily_report"}, follow=False).status == 403


def test_the_demo_on_django_6_starts_tasks_with_the_list_s_start_action(django6_demo):
    """The demo's first step (tick a task, choose Start): Django 6.1's admin passes actions their location."""
    client = AdminClient(django6_demo)
    client.login("admin", "admin")
    listing = html.unescape(client.get("/admin/taskmanager/task/").text)
    task_id = re.search(
        r'href="/admin/taskmanager/task/(\d+)/change/[^"]*">Refresh the cache<', listing
    ).group(1)
    data = {"action": "start_tasks", "index": "0", "select_across": "0", "_selected_action": [task_id]}
    started = client.post("/admin/taskmanager/task/", data, follow=False)
    assert started.status == 302, started.text[-3000:]
    assert wait_for(lambda: task_result(client, task_id), timeout=120, message="the run's end") == "OK"

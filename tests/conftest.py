"""Fixtures: real uWSGI servers with spoolers on the test database, users, admin clients, local
endpoints and a browser. The helpers the tests import are in tests/support/."""

import os
from pathlib import Path

import pytest

from .support.adminclient import PASSWORD, client_for
from .support.browser import CHROMIUM, chromium, unavailable
from .support.dbflush import retry_deadlocked_flushes
from .support.hosts import Host, namespaces_unavailable
from .support.objects import make_superuser
from .support.recorder import Recorder, slack_api
from .support.uwsgi_server import ROOT, UwsgiServer, node_env

retry_deadlocked_flushes()  # the flush between tests may meet a live spooler's transaction

# -- uWSGI -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def uwsgi_server(django_db_setup, django_db_blocker):
    """One uWSGI (2 workers, 2 spooler processes) for the session, on the test database."""
    server = UwsgiServer(env=node_env()).start()
    yield server
    server.stop()


@pytest.fixture
def server(uwsgi_server, transactional_db):
    """The session's uWSGI server, for a test whose data it must see (transaction=True)."""
    if uwsgi_server.proc is None or uwsgi_server.proc.poll() is not None:
        pytest.fail("the uWSGI server died:\n" + uwsgi_server.log()[-5000:])
    return uwsgi_server


@pytest.fixture
def uwsgi_node(transactional_db):
    """Start another uWSGI on the test database: ``uwsgi_node(settings={...}, login=True, env=None, **options)``.

    ``settings`` overrides Django settings in that node; ``env`` adds to its
    environment (e.g. ``tests/support/clock.py``'s ``skewed_env``); ``options`` are
    UwsgiServer's (``spooler_processes``, ``http``, ``extra_args``,
    ``spool_dir``, ``drop_args``). With ``login`` (and HTTP), the node's
    ``admin`` is an AdminClient logged in as the superuser "admin" (created
    if the test has none). Returns the started node; every node started is
    stopped at the end of the test.
    """
    started = []

    def start(settings=None, login=True, env=None, **options):
        node = UwsgiServer(env={**node_env(settings), **(env or {})}, **options)
        started.append(node)
        node.start()
        if login and node.http:
            make_superuser()
            node.admin = client_for(node.url, "admin")
        return node

    start.nodes = started
    yield start
    for node in started:
        node.stop()


@pytest.fixture(scope="module")
def hosts(django_db_setup, django_db_blocker):
    """Start machines sharing the test database: ``hosts("a", "b", settings={...}, **options)``.

    Each name is a uWSGI node (``tests/support/hosts.py``'s Host) in a UTS +
    PID namespace of its own with that host name; ``settings`` and
    ``options`` are as ``uwsgi_node``'s. Returns the started hosts, in order;
    ``hosts.started`` lists every host of the module, all stopped at its end
    (module-scoped: a module shares its machines between its tests). Skips,
    saying why, where namespaces cannot be had (not root, unshare refused).
    """
    reason = namespaces_unavailable()
    if reason:
        pytest.skip("several hosts need UTS + PID namespaces: %s" % reason)
    started = []

    def start(*names, settings=None, env=None, **options):
        made = []
        for name in names:
            host = Host(name, env={**node_env(settings), **(env or {})}, **options)
            started.append(host)
            made.append(host.start())
        return made

    start.started = started
    yield start
    for host in started:
        host.stop()


# -- users and clients ---------------------------------------------------------------


@pytest.fixture
def superuser(transactional_db):
    """The superuser "admin" (password ``support.adminclient.PASSWORD``)."""
    return make_superuser()


@pytest.fixture
def staff(transactional_db):
    """Make staff users: ``staff("view_task", ..., username="staff")`` with those taskmanager permissions."""
    from django.contrib.auth.models import Permission, User

    def make(*codenames, username="staff"):
        user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="taskmanager", codename__in=codenames)
        )
        return user

    return make


@pytest.fixture
def admin_http(server, superuser):
    """An AdminClient logged in as a superuser on the real server."""
    return client_for(server.url, "admin")


def _collect(exclude_core: bool) -> dict:
    from taskmanager.management.commands.collect_commands import collect
    from taskmanager.models import Command

    collect(exclude_core=exclude_core)
    return {c.name: c for c in Command.objects.all()}


@pytest.fixture
def collected(transactional_db):
    """Every command collected (Django's included), as a fresh project would: ``{name: Command}``."""
    return _collect(exclude_core=False)


@pytest.fixture
def commands(transactional_db):
    """Collect the commands (as ``collect_commands --excludecore``) and return {name: Command}."""
    return _collect(exclude_core=True)


# -- local endpoints -----------------------------------------------------------------


@pytest.fixture
def endpoints():
    """Make local HTTP endpoints: ``endpoints(status=..., body=...)``, or ``endpoints(slack=True, ok=...)``."""
    made = []

    def make(**kwargs):
        recorder = slack_api(**kwargs) if kwargs.pop("slack", False) else Recorder(**kwargs)
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        recorder.close()


@pytest.fixture
def webhook(endpoints):
    """A local HTTP endpoint recording the notification webhooks it receives."""
    return endpoints()


# -- the browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright_api():
    if not Path(CHROMIUM).exists():
        unavailable("no chromium at %s (apt-get install chromium, or set TM_CHROMIUM)" % CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed (pip install playwright)")
    # Playwright's sync API keeps an asyncio loop running in this thread, which
    # Django's async-safety guard takes for async code: the ORM calls of the
    # tests are plain synchronous code, so lift the guard while it runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as api:
            yield api
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def static_server(django_db_setup, django_db_blocker):
    """A uWSGI like the session's, also serving the admin's and the app's static files."""
    import django.contrib.admin

    admin_static = Path(django.contrib.admin.__file__).parent / "static" / "admin"
    app_static = ROOT / "taskmanager" / "static" / "taskmanager"
    server = UwsgiServer(
        env=node_env(),
        extra_args=[
            "--static-map",
            "/static/admin=%s" % admin_static,
            "--static-map",
            "/static/taskmanager=%s" % app_static,
        ],
    ).start()
    yield server
    server.stop()


@pytest.fixture
def browser(playwright_api, static_server, transactional_db):
    """A chromium context 1600 px wide, the admin's navigation sidebar folded."""
    with chromium(playwright_api) as context:
        # Fold the admin's navigation sidebar (as its toggle would): the task
        # list's columns then fit the screenshots.
        context.add_init_script("window.localStorage.setItem('django.admin.navSidebarIsOpen', 'false');")
        yield context


# -- reporting -----------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the uWSGI logs to a failing test that used a server or started nodes."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        server = funcargs.get("server")
        if server is not None:
            report.sections.append(("uWSGI log (tail)", server.log()[-8000:]))
        for number, node in enumerate(getattr(funcargs.get("uwsgi_node"), "nodes", ()), 1):
            report.sections.append(("uWSGI node %d log (tail)" % number, node.log()[-8000:]))
        for host in getattr(funcargs.get("hosts"), "started", ()):
            report.sections.append(("uWSGI host %s log (tail)" % host.name, host.log()[-8000:]))

"""Fixtures: a real uWSGI server with a spooler, and an admin client talking to it over HTTP."""

import time

import pytest
from django.conf import settings

from .adminclient import AdminClient
from .uwsgi_server import UwsgiServer

PASSWORD = "pw-for-tests"


def wait_for(predicate, timeout=20.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; return it or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, message))


def server_env() -> dict:
    return {"TM_TEST_SERVER_DB": str(settings.DATABASES["default"]["NAME"])}


@pytest.fixture(scope="session")
def uwsgi_server(django_db_setup, django_db_blocker):
    """One uWSGI (2 workers, 2 spooler processes) for the session, on the test database."""
    server = UwsgiServer(env=server_env()).start()
    yield server
    server.stop()


@pytest.fixture
def server(uwsgi_server, transactional_db):
    """The session's uWSGI server, for a test whose data it must see (transaction=True)."""
    if uwsgi_server.proc is None or uwsgi_server.proc.poll() is not None:
        pytest.fail("the uWSGI server died:\n" + uwsgi_server.log()[-5000:])
    return uwsgi_server


@pytest.fixture
def superuser(transactional_db):
    from django.contrib.auth.models import User

    return User.objects.create_superuser("admin", "admin@example.com", PASSWORD)


@pytest.fixture
def admin_http(server, superuser):
    """An AdminClient logged in as a superuser on the real server."""
    client = AdminClient(server.url)
    client.login("admin", PASSWORD)
    return client


@pytest.fixture
def commands(transactional_db):
    """Collect the commands (as ``collect_commands --excludecore``) and return {name: Command}."""
    from taskmanager.management.commands.collect_commands import collect
    from taskmanager.models import Command

    collect(exclude_core=True)
    return {c.name: c for c in Command.objects.all()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the uWSGI log to a failing test that used the server."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        server = item.funcargs.get("server") if hasattr(item, "funcargs") else None
        if server is not None:
            report.sections.append(("uWSGI log (tail)", server.log()[-8000:]))

import time

from django.apps import AppConfig
from django.conf import settings


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"

    def ready(self):
        from taskmanager.uwsgi_runtime import spooler_configured

        if spooler_configured():
            # Deferred: uwsgidecorators imports only under uWSGI with a spooler.
            from . import spoolfuncs  # noqa: F401 - registers the project's own @spool function
        delay = getattr(settings, "TM_TEST_COMMIT_DELAY", 0)
        if delay:
            # Widen the window between a statement and its commit, so that a
            # test can catch work handed to a spooler before the commit.
            from django.db.backends.base.base import BaseDatabaseWrapper

            original = BaseDatabaseWrapper.commit

            def slow_commit(self):
                time.sleep(delay)
                return original(self)

            BaseDatabaseWrapper.commit = slow_commit

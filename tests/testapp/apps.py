import os
import time

from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"

    def ready(self):
        from taskmanager.uwsgi_runtime import spooler_configured

        if spooler_configured():
            # Deferred: uwsgidecorators imports only under uWSGI with a spooler.
            from . import spoolfuncs  # noqa: F401 - registers the project's own @spool function
        from tests.support import sqlcount

        if os.environ.get(sqlcount.DIR_ENV):
            # A node that counts its SQL (tests/test_run_path.py: the run path's statements).
            connection_created.connect(sqlcount.install, dispatch_uid="tm-sql-count")
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

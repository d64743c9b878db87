"""The flush between transactional tests, on a database live spoolers are using.

A test with ``transactional_db`` ends with Django's ``flush``, on PostgreSQL one
``TRUNCATE`` of every table, which takes an ACCESS EXCLUSIVE lock on each table
in turn. The session's uWSGI server is still running then (its spoolers' periodic
passes, a run's last writes): a transaction of theirs holding a lock on a table
the TRUNCATE has not reached yet, and asking for one it holds, is a deadlock, and
PostgreSQL may choose the TRUNCATE as its victim ("deadlock detected" after the
deadlock timeout, 1 s). The flush then fails, the test errors in its teardown and
the next test finds the last one's rows (seen once in CI, in the django.tasks
tests on PostgreSQL). Nothing the product does in production truncates, so the
flush is tried again: it is one transaction, rolled back whole by the deadlock.
"""

from django.core.management.base import CommandError
from django.test import TransactionTestCase

from taskmanager.busy import is_deadlock

#: Attempts of a flush before its error stands (each deadlock costs the deadlock timeout).
ATTEMPTS = 10


def retry_deadlocked_flushes() -> None:
    """Make the teardown of Django's transactional tests flush again when its flush lost a deadlock."""
    flush = TransactionTestCase._fixture_teardown
    if getattr(flush, "retries_deadlocks", False):
        return

    def _fixture_teardown(self):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return flush(self)
            except CommandError as exc:  # flush's, raised from the database's OperationalError
                if attempt == ATTEMPTS or not is_deadlock(exc.__cause__):
                    raise

    _fixture_teardown.retries_deadlocks = True
    TransactionTestCase._fixture_teardown = _fixture_teardown

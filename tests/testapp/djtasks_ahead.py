"""A django.tasks function whose module says which process imported it (tests/test_django_tasks_runs.py).

Only the enqueue view names it (tests/testapp/djtasks.py): no spooler imports
it on its own, so the process that did is the fork server (imported ahead)
or the run's child (imported at each run).
"""

import os

from taskmanager.djangotasks.api import task

#: The pid of the process that imported this module.
IMPORTED_BY = os.getpid()


@task
def imported_by():
    """Return the pid of the process that imported this module, and of this run's process and its parent."""
    return {"imported_by": IMPORTED_BY, "pid": os.getpid(), "parent": os.getppid()}

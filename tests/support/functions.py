"""The ``@task`` functions of tests/testapp/tasks.py as the tests of function tasks use them (issue 19).

Their dotted paths (the names of their Command rows), the Commands page of
one, activation (a superuser's act, done straight in the database where the
test is not about it), and the module-level skip where neither django.tasks
nor the backport is installed.
"""

import pytest

from taskmanager.djangotasks import api
from taskmanager.models import Command

GREET = "tests.testapp.tasks.greet"
EXPLODE = "tests.testapp.tasks.explode"
NAP = "tests.testapp.tasks.nap"
WHICH_RUN = "tests.testapp.tasks.which_run"
COMMAND_URL = "/admin/taskmanager/command/%d/change/"


def skip_without_api() -> None:
    """Skip the calling test module (at its import) when the django.tasks API is missing, saying why."""
    if api.SOURCE is None:
        pytest.skip("@task functions need the django.tasks API: %s" % api.MISSING, allow_module_level=True)


def activate(*names, **fields) -> None:
    """Activate the collected functions ``names`` (a superuser's act, here straight in the database)."""
    Command.objects.filter(name__in=names, kind=Command.Kind.FUNCTION).update(active=True, **fields)

"""The ``@task`` functions a Task of the admin runs (issue 19, tests/test_task_functions.py).

``collect_commands`` finds them here (an app's ``tasks`` module) where the
django.tasks API is (Django 6.0+, or the backport): nothing imports this
module elsewhere, so it needs no django.tasks on Django 5.2.
"""

import logging
import time

from taskmanager.djangotasks.api import task

logger = logging.getLogger("tests.tasks")


@task
def greet(name, times=1, *, loud=False):
    """Log at INFO and WARNING, print, and return what it did."""
    logger.info("greeting %s", name)
    logger.warning("%s is greeted %d time(s)", name, times)
    print(("HELLO " if loud else "hello ") + name)
    return {"greeted": name, "times": times}


@task
def explode(message):
    """Raise ValueError(message)."""
    logger.info("about to explode")
    raise ValueError(message)


@task
def nap(seconds):
    """Sleep ``seconds`` (a run for Stop and the time-out); return them."""
    print("napping", flush=True)
    time.sleep(seconds)
    return seconds


@task(takes_context=True)
def which_run(context, label):
    """Log what its context says of the run; return ``label``."""
    logger.info("attempt %s of %s", context.attempt, context.task_result.id)
    return label


def not_a_task():
    """A plain function: not collected."""

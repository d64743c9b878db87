"""The demo's django.tasks functions (``demoproject.settings`` sets TASKS where the API is installed).

Enqueued from the admin (*Demo > Try django.tasks*, :mod:`demoapp.admin`),
each call runs on a uWSGI spooler in a supervised child, like a command run:
what it logs is in its run's log with the levels, what it returns is the
result's return value (JSON), an exception makes it FAILED with the
traceback. ``task`` comes from Django 6's ``django.tasks``, or on Django
5.2 from the ``django-tasks`` backport (:mod:`taskmanager.djangotasks.api`
chooses). Imported by :mod:`demoapp.admin` only where one of them is
installed, and by ``collect_commands``, which records these functions
(inactive) as functions a Task may run (``docs/task_functions.rst``).
"""

import logging
import re
from collections import Counter

from taskmanager.djangotasks.api import task

logger = logging.getLogger(__name__)


@task
def daily_report():
    """A short report with no arguments: a few log lines at several levels, and a summary returned."""
    from taskmanager.models import Report, Task

    logger.info("Counting the task manager's tasks and runs")
    tasks = Task.objects.offered().count()  # not the carrier tasks of django.tasks calls
    reports = Report.objects.count()
    logger.info("%d tasks, %d reports", tasks, reports)
    failed = Report.objects.filter(result=Task.Result.FAILED).count()
    if failed:
        logger.warning("%d runs ended FAILED: open their reports to see why", failed)
    else:
        logger.info("No run ended FAILED")
    logger.debug("a DEBUG line: kept in the log, shown when the viewer's level allows it")
    print("Printed lines are captured too.")
    return {"tasks": tasks, "reports": reports, "failed_runs": failed}


@task
def count_words(text, top=3):
    """Count the words of ``text``; return the ``top`` most common with their counts."""
    words = re.findall(r"\w+", text.lower())
    logger.info("%d words, %d different", len(words), len(set(words)))
    if not words:
        logger.error("no words in %r", text)
    common = Counter(words).most_common(top)
    return {"words": len(words), "most_common": [[word, count] for word, count in common]}

"""django.tasks rows no spool hint will run: the periodic pass of a spooler node hints them here.

The row is the queue of record of the django.tasks backend; a spool hint
(an entry of task 0, trigger ``enqueue``) only wakes a spooler, which then
claims the best due row of its node's queues (``djangotasks/run.py``). A
row has no hint when it was enqueued where no spooler is (a shell, a
management command, a web-only node), when its hint was consumed by a node
that does not serve its queue or does not know such hints (an older
version, during a rolling deploy), or when the spool file was lost.

:func:`hint_waiting_results`, a step of every spooler node's periodic pass
(``TASKMANAGER_RECOVERY_SECONDS``), makes the due rows of the queues this
node serves run: it writes one hint for each due row (at most
``TASKMANAGER_TAKEOVER_BATCH`` a pass) beyond the hints already waiting in
this node's spool directory. A hint names no row (it runs the best due
one), so hints are counted, not matched. A *waiting* hint is a hint file
due now that no spooler holds: uWSGI holds the file it runs with an fcntl
lock until the handler returns (``spooler.c``), so a hint whose run takes
hours is not counted as work still to come; the lock is tested with
``F_GETLK``, which takes none (a spooler scanning at that instant is not
turned away). A hint too many claims nothing and is consumed (one SELECT);
a row hinted on another node too runs once (the claim's conditional
UPDATE). Without due rows the step costs one indexed SELECT and reads no
spool file. Imports neither the runner nor a backend.
"""

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime

from .. import spoolfiles
from ..conf import app_settings, served_queues
from ..models import DjangoTaskResult, Report

logger = logging.getLogger("taskmanager.recovery")

#: The trigger of a django.tasks hint (the backend's ``HINT_TRIGGER``).
HINT = Report.Trigger.ENQUEUE


def hint_waiting_results(spool_dir: str, spool: Callable[[int, str, str, datetime | None], str]) -> int:
    """Hint the due rows of this node's queues that the waiting hints do not cover; return how many.

    ``spool(task_id, token, trigger, at)`` is the spooler backend's: each hint
    is task 0 with the row's id as its token (for the logs: any hint runs
    the best due row).
    """
    due = list(
        DjangoTaskResult.objects.due(served_queues()).values_list("pk", flat=True)[
            : int(app_settings.TAKEOVER_BATCH)
        ]
    )
    if not due:
        return 0
    waiting = waiting_hints(spool_dir, time.time())
    written = 0
    for pk in due[waiting:]:
        try:
            spool(0, pk, HINT, None)
        except Exception:  # noqa: BLE001 - the row stays READY: the next pass hints it
            logger.exception("taskmanager: could not write the spool hint of task result %s", pk)
            break
        written += 1
    if written:
        logger.info("taskmanager: %d django.tasks result(s) with no waiting spool hint hinted here.", written)
    return written


def waiting_hints(spool_dir: str, now: float) -> int:
    """How many django.tasks hints of ``spool_dir`` are due by ``now`` (unix seconds) and held by no spooler."""
    return sum(
        1
        for path, entry in spoolfiles.due_entries(spool_dir, now)  # a hint deferred to run_after is not due
        if entry["task"] == "0" and entry.get("trigger") == HINT and not held(path)
    )


def held(path: str) -> bool:
    """Whether a spooler holds ``path`` (it is running it): another process's fcntl lock on it.

    ``F_TEST`` is ``F_GETLK``: it only asks, so a spooler's lock attempt at
    this instant still succeeds. Closing the descriptor drops no lock of
    this process: an idle spooler runs the pass and holds none.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # consumed meanwhile: not waiting
    try:
        os.lockf(fd, os.F_TEST, 0)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

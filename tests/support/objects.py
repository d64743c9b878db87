"""Rows made directly in the test database, for tests that need a state rather than a run to reach it."""

import os
import socket
from datetime import timedelta

from django.utils import timezone

from taskmanager import logcapture, logstore, processes
from taskmanager.models import Report, Task

from .adminclient import PASSWORD


def make_superuser(username="admin"):
    """The superuser ``username`` (password ``adminclient.PASSWORD``), made if it does not exist yet."""
    from django.contrib.auth.models import User

    return User.objects.filter(username=username).first() or User.objects.create_superuser(
        username, "%s@example.com" % username, PASSWORD
    )


def make_task(commands, name, command="tm_ok", **fields) -> Task:
    """A task of the collected command ``command`` (a name in ``commands``), with model ``fields``."""
    return Task.objects.create(name=name, command=commands[command], **fields)


def make_report(task, running=False, alive=True, **fields) -> Report:
    """A report of ``task``: finished ("OK" unless ``fields`` say otherwise) or ``running``.

    A running report is ``alive`` when its supervisor is this test process
    (with a heartbeat an hour ahead): recovery leaves such a run alone.
    Otherwise it has no supervisor at all.
    """
    values = {"trigger": "start"}
    if not running:
        values.update(result="OK", finished_datetime=timezone.now())
    elif alive:
        values.update(
            host=socket.gethostname(),
            supervisor_pid=os.getpid(),
            supervisor_started=processes.start_time(os.getpid()),
            heartbeat=timezone.now() + timedelta(hours=1),
        )
    values.update(fields)
    return Report.objects.create(task=task, **values)


def log_texts(report) -> list[str]:
    """The texts of the report's log lines, in order."""
    return list(report.log_lines.order_by("seq").values_list("text", flat=True))


def add_log_lines(report, lines, first=1, stream="stdout", batch=1000) -> list[tuple]:
    """Store ``lines`` (texts, or (level, text) pairs; level INFO for a bare text) as the report's log.

    Numbered from ``first``, stamped now; returns the rows as stored (logstore.FIELDS order).
    """
    stamps = logstore.Stamps()
    now_us = int(timezone.now().timestamp() * 1e6)
    rows = []
    for seq, line in enumerate(lines, first):
        level, text = (20, line) if isinstance(line, str) else line
        rows.append((report.pk, seq, level, logcapture.severity(level), stream, stamps(now_us + seq), text))
    for start in range(0, len(rows), batch):
        logstore.insert_rows(rows[start : start + batch])
    return rows

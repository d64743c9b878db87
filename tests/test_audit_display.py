"""A task's History page reads as the rest of the admin (issue 16, newcomer walk-through).

It showed raw internals: "status: IDLE → SPOOLED", ISO dates, field names
such as "notify", "Definition version 1." in English on the Italian page,
and a Run now with other arguments as if the task's arguments had changed.
Through the real uWSGI server, in Italian (``Accept-Language: it``).
"""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone, translation

from taskmanager import audit, datetimes
from taskmanager.models import Task

from .support.admin import TASK_URL, edit_task
from .support.adminclient import client_for
from .support.objects import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def _changes_text(page: str) -> str:
    """The "before and after" cells of the audit table, as text."""
    cells = re.findall(r'<tr class="tm-audit-entry".*?</tr>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", " | ".join(cells)))


def test_the_italian_history_page_shows_labels_not_internals(server, admin_http, superuser, commands):
    task = make_task(commands, "storia", arguments="--lines 1")
    # A save from the English admin: the definition's version, stored once for every reader.
    edit_task(admin_http, task, arguments="--lines 2")
    at = timezone.now() + timedelta(hours=1)
    # What Start, a change of the notifications and a Run now with other arguments record.
    audit.record(
        audit.Action.START,
        task,
        user=superuser,
        changes={"status": [Task.Status.IDLE, Task.Status.SPOOLED], "next_datetime": [None, at]},
    )
    audit.record(audit.Action.EDIT, task, user=superuser, changes={"notify": [True, False]})
    audit.record(
        audit.Action.RUN_NOW,
        task,
        user=superuser,
        changes={"arguments": ["--lines 2", "--lines 7"]},
        message="With other arguments, for this run only; the task keeps its own.",
    )

    page = client_for(server.url, "admin", language="it").get(TASK_URL + "%d/history/" % task.pk)
    assert page.status == 200
    text = _changes_text(page.text)
    for raw in ("IDLE", "SPOOLED", "next_datetime", "notify", "Definition version", at.isoformat()[:10]):
        assert raw not in text, (raw, text)
    assert "stato: Inattiva → In coda" in re.sub(r"\s+", " ", text), text
    with_it = html.unescape(page.text)
    assert "prossima esecuzione" in text.lower()
    # The app's one date format, as the Italian admin shows it.
    with translation.override("it"):
        assert datetimes.format_datetime(at) in text
    assert "invia notifiche" in text.lower() and "sì → no" in re.sub(r"\s+", " ", text)
    assert "Versione della definizione 2." in with_it
    # The one-off run: its arguments, the task's own kept (not struck through).
    assert "<del>--lines 2</del>" not in page.text
    squashed = re.sub(r"\s+", " ", text)
    assert "argomenti di una sola esecuzione: --lines 7 (quelli dell'attività mantenuti)" in squashed, (
        squashed
    )
    assert "With other arguments" not in with_it and "Con altri argomenti" in with_it

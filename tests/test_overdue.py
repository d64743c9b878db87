"""Issue 13 item 12: a pending task whose run silently did not happen (lost entry, dead node)
raises one "overdue" notice, a banner in the admin, and a "recovered" notice when it runs again."""

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from taskmanager.models import Task
from taskmanager.recovery import notify_overdue, periodic_steps

from .support.objects import make_task
from .support.spool import node_name
from .support.waits import finished_report, recovery_ticks, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TASK_LIST = "/admin/taskmanager/task/"


def kinds(recorder) -> list[tuple]:
    """(event, task id, cause) of each notice ``recorder`` received."""
    return [(r["data"]["event"], r["data"]["task"]["id"], r["data"].get("cause")) for r in recorder.requests]


def make_overdue(commands, name, node="elsewhere:/nowhere", late=10) -> Task:
    """A task SPOOLED on ``node`` whose next execution is ``late`` seconds past, with no spool entry."""
    task = make_task(commands, name, "tm_ok")
    Task.objects.filter(pk=task.pk).update(
        status=Task.Status.SPOOLED,
        run_token=uuid.uuid4().hex,
        next_datetime=timezone.now() - timedelta(seconds=late),
        spooler_id="",
        spooler_node=node,
    )
    return Task.objects.get(pk=task.pk)


def test_overdue_notice_banner_and_recovered_through_uwsgi(uwsgi_node, webhook, commands):
    node = uwsgi_node(
        {
            "TASKMANAGER_RECOVERY_SECONDS": 1,
            "TASKMANAGER_OVERDUE_GRACE": 2,
            "TASKMANAGER_NOTIFY_WEBHOOK_URL": webhook.url + "/hook",
        },
        spooler_processes=2,
    )
    # On a dead node: this node's respool leaves it alone, it stays overdue.
    task = make_overdue(commands, "nightly <b>import</b>")

    wait_for(lambda: kinds(webhook), message="the overdue notice")
    assert kinds(webhook) == [("overdue", task.pk, None)]
    payload = webhook.requests[0]["data"]
    assert payload["report"] is None
    assert payload["text"].startswith("Task nightly <b>import</b> is overdue")
    assert payload["overdue"]["node"] == "elsewhere:/nowhere"
    assert Task.objects.get(pk=task.pk).overdue_notified_at is not None

    # Several more passes of the spooler processes: still one notice.
    recovery_ticks(node, 4)
    assert len(webhook.requests) == 1, kinds(webhook)

    page = node.admin.get(TASK_LIST).text
    assert "tm-overdue-banner" in page
    assert "1 task is overdue" in page
    assert "nightly &lt;b&gt;import&lt;/b&gt;" in page
    assert "nightly <b>import" not in page
    assert "/admin/taskmanager/task/%d/change/" % task.pk in page
    assert "tm-overdue-banner" in node.admin.get("/admin/taskmanager/task/%d/change/" % task.pk).text

    # The node comes back (the task is now on this node): respool runs it, "recovered" follows.
    Task.objects.filter(pk=task.pk).update(spooler_node=node_name(node.spool_dir))
    report = finished_report(task)
    assert report.result == "OK"
    wait_for(lambda: len(webhook.requests) == 2, message="the recovered notice")
    assert kinds(webhook)[1] == ("recovered", task.pk, "overdue")
    assert webhook.requests[1]["data"]["report"]["id"] == report.pk
    assert Task.objects.get(pk=task.pk).overdue_notified_at is None
    assert "tm-overdue-banner" not in node.admin.get(TASK_LIST).text


def test_overdue_step_marks_once(webhook, commands):
    task = make_overdue(commands, "late")
    quiet = make_overdue(commands, "late but quiet")
    Task.objects.filter(pk=quiet.pk).update(notify=False)
    on_time = make_overdue(commands, "within the grace", late=1)
    with override_settings(TASKMANAGER_OVERDUE_GRACE=5, TASKMANAGER_NOTIFY_WEBHOOK_URL=webhook.url):
        assert (notify_overdue, ()) in periodic_steps()
        assert notify_overdue() == 2
        assert notify_overdue() == 0
    assert kinds(webhook) == [("overdue", task.pk, None)]
    assert Task.objects.get(pk=quiet.pk).overdue_notified_at is not None
    assert Task.objects.get(pk=on_time.pk).overdue_notified_at is None
    # A later slot (after the mark: e.g. stopped and started again) missed again is notified again.
    now = timezone.now()
    Task.objects.filter(pk=task.pk).update(
        overdue_notified_at=now - timedelta(seconds=30), next_datetime=now - timedelta(seconds=6)
    )
    with override_settings(TASKMANAGER_OVERDUE_GRACE=5, TASKMANAGER_NOTIFY_WEBHOOK_URL=webhook.url):
        assert notify_overdue() == 1
    assert len(webhook.requests) == 2
    # Grace 0: off.
    Task.objects.update(overdue_notified_at=None)
    with override_settings(TASKMANAGER_OVERDUE_GRACE=0, TASKMANAGER_NOTIFY_WEBHOOK_URL=webhook.url):
        assert notify_overdue() == 0
    assert len(webhook.requests) == 2


def test_recovered_only_when_the_missed_slot_is_left(webhook, commands):
    from taskmanager.notifications import overdue_recovered

    from .support.objects import make_report

    task = make_overdue(commands, "stuck")
    with override_settings(TASKMANAGER_OVERDUE_GRACE=5, TASKMANAGER_NOTIFY_WEBHOOK_URL=webhook.url):
        assert notify_overdue() == 1
        report = make_report(task, result="OK")
        # A "run now" ended, the chain still waits on the missed slot: no "recovered", still marked.
        assert overdue_recovered(task, report) == []
        assert Task.objects.get(pk=task.pk).overdue_notified_at is not None
        # The missed slot ran (a non-periodic task is idle after it): one "recovered".
        Task.objects.filter(pk=task.pk).update(status=Task.Status.IDLE, run_token="")
        assert overdue_recovered(task, report) == ["webhook"]
        assert overdue_recovered(task, report) == []
    assert kinds(webhook) == [("overdue", task.pk, None), ("recovered", task.pk, "overdue")]

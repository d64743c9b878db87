"""Notifications end to end: runs in a real uWSGI spooler notify a local webhook,
a local Slack API endpoint and e-mail (Django's file-based backend, which works
across processes).

Each end-to-end test starts a node with its notification settings and one
spooler process: runs and their notices happen strictly one after the
other, so "no notice for this run" can be checked once a later run has sent
its own.
"""

import email
import os
import signal
import tempfile
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from taskmanager import notifications
from taskmanager.models import Report, RunHistory, Task

from .support.admin import add_task, press
from .support.objects import make_report, make_task
from .support.procs import free_port
from .support.recorder import events
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def read_mails(directory) -> list:
    """Parse the messages Django's file-based backend wrote into ``directory``."""
    separator = b"\n" + b"-" * 79 + b"\n"
    found = []
    # By write time: two files written within one second have names in any order.
    for path in sorted(Path(directory).glob("*.log"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        for chunk in path.read_bytes().split(separator):
            if chunk.strip():
                found.append(email.message_from_bytes(chunk.lstrip(b"\n")))
    return found


def test_failure_then_recovered_on_every_channel(uwsgi_node, endpoints, commands, tmp_path):
    webhook, slack = endpoints(), endpoints(slack=True)
    mail_dir = tempfile.mkdtemp(prefix="tm-mail-")
    node = uwsgi_node(
        {
            "TASKMANAGER_NOTIFY_WEBHOOK_URL": webhook.url + "/hook",
            "TASKMANAGER_NOTIFY_SLACK_TOKEN": "xoxb-test-token",
            "TASKMANAGER_NOTIFY_SLACK_CHANNEL": "#ops",
            "TASKMANAGER_NOTIFY_SLACK_BASE_URL": slack.url + "/api/",
            "TASKMANAGER_NOTIFY_SITE_URL": "https://ops.example.com",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": mail_dir,
            "ADMINS": [["Ops", "ops@example.com"]],
        },
        spooler_processes=1,
    )
    client = node.admin
    state = tmp_path / "state"
    state.write_text("fail")
    task = add_task(client, commands, "nightly <import>", "tm_flaky", "--state %s" % state, notify="on")
    assert task.notify

    press(client, task, "start")
    failed = finished_report(task)
    assert failed.result == "FAILED"
    wait_for(lambda: events(webhook) == [("failure", failed.pk)], message="the failure webhook")
    hook = webhook.requests[0]
    assert hook["path"] == "/hook"
    assert hook["headers"]["Content-Type"] == "application/json"
    payload = hook["data"]
    assert payload["text"] == "Task nightly <import> failed"
    assert payload["task"] == {
        "id": task.pk,
        "name": "nightly <import>",
        "command": "tm_flaky",
        "url": "https://ops.example.com/admin/taskmanager/task/%d/change/" % task.pk,
    }
    assert payload["report"]["result"] == "FAILED"
    assert payload["report"]["end_reason"] == failed.end_reason
    # How it ended, as data (issue 16): a CommandError is a crash, with no exit code.
    assert (payload["report"]["end_kind"], payload["report"]["exit_code"]) == ("crashed", None)
    assert any("the state file says fail" in line for line in payload["report"]["tail"])

    wait_for(lambda: len(slack.requests) == 1, message="the Slack message")
    posted = slack.requests[0]
    assert posted["path"] == "/api/chat.postMessage"
    assert posted["headers"]["Authorization"] == "Bearer xoxb-test-token"
    assert posted["data"]["channel"] == "#ops"
    # Slack markup in a task name is escaped.
    assert posted["data"]["text"] == "Task nightly &lt;import&gt; failed"

    mails = wait_for(lambda: read_mails(mail_dir), message="the e-mail")
    assert len(mails) == 1
    assert mails[0]["To"] == "ops@example.com"
    assert mails[0]["Subject"] == "[Django] Task nightly <import> failed"
    body = mails[0].get_payload(decode=True).decode()
    assert "the state file says fail" in body
    assert "https://ops.example.com/admin/taskmanager/report/%d/log/" % failed.pk in body

    # Fixed: the next run sends one "recovered" notice...
    state.write_text("ok")
    press(client, task, "start")
    recovered = wait_for(lambda: Report.objects.filter(task=task, result="OK").first(), timeout=30)
    wait_for(lambda: len(webhook.requests) == 2, message="the recovered webhook")
    assert events(webhook)[1] == ("recovered", recovered.pk)
    assert webhook.requests[1]["data"]["text"] == "Task nightly <import> recovered (OK)"
    wait_for(lambda: len(read_mails(mail_dir)) == 2, message="the recovered e-mail")
    assert read_mails(mail_dir)[1]["Subject"] == "[Django] Task nightly <import> recovered (OK)"
    wait_for(lambda: len(slack.requests) == 2, message="the recovered Slack message")

    # ...and a further good run none: the failing run after it is the next notice.
    press(client, task, "start")
    quiet = wait_for(lambda: Report.objects.filter(task=task, result="OK").exclude(pk=recovered.pk).first())
    state.write_text("fail")
    press(client, task, "start")
    again = wait_for(lambda: Report.objects.filter(task=task, result="FAILED").exclude(pk=failed.pk).first())
    wait_for(lambda: len(webhook.requests) == 3, message="the second failure webhook")
    assert events(webhook) == [("failure", failed.pk), ("recovered", recovered.pk), ("failure", again.pk)]
    assert quiet.pk not in [pk for _e, pk in events(webhook)]


def test_stopped_and_opted_out_runs_send_no_failure_notice(uwsgi_node, endpoints, commands):
    webhook = endpoints()
    node = uwsgi_node({"TASKMANAGER_NOTIFY_WEBHOOK_URL": webhook.url}, spooler_processes=1)
    client = node.admin
    sleeper = add_task(client, commands, "sleeper", "tm_sleep", "--seconds 60", notify="on")
    quiet = add_task(client, commands, "quiet failure", "tm_raise")  # box unticked
    loud = add_task(client, commands, "loud failure", "tm_raise", notify="on")
    assert not quiet.notify

    press(client, sleeper, "start")
    wait_for(
        lambda: Report.objects.filter(task=sleeper, pid__isnull=False).exists(), message="the sleeper running"
    )
    press(client, sleeper, "stop")
    stopped = finished_report(sleeper)
    assert stopped.result == "FAILED"
    assert stopped.end_reason.startswith("stopped by")

    press(client, quiet, "start")
    assert finished_report(quiet).result == "FAILED"

    press(client, loud, "start")
    loud_report = finished_report(loud)
    wait_for(lambda: webhook.requests, message="the loud failure's webhook")
    assert events(webhook) == [("failure", loud_report.pk)]
    log = node.log()
    assert "Run %d of task sleeper was stopped by a user: no failure notice." % stopped.pk in log
    assert "Notifications are off for task quiet failure" in log
    sleeper.refresh_from_db()
    assert not sleeper.failure_notified


def test_failing_channels_are_logged_and_change_nothing(uwsgi_node, endpoints, commands):
    broken_hook = endpoints(status=500, body=b"down")
    slack = endpoints(slack=True, ok=False)
    closed_port = free_port()  # a port nobody listens on
    node = uwsgi_node(
        {
            "TASKMANAGER_NOTIFY_WEBHOOK_URL": broken_hook.url,
            "TASKMANAGER_NOTIFY_SLACK_TOKEN": "xoxb-test-token",
            "TASKMANAGER_NOTIFY_SLACK_CHANNEL": "#nowhere",
            "TASKMANAGER_NOTIFY_SLACK_BASE_URL": slack.url + "/api/",
            "TASKMANAGER_NOTIFY_EMAIL_RECIPIENTS": ["ops@example.com"],
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": closed_port,
        },
        spooler_processes=1,
    )
    client = node.admin
    failing = add_task(client, commands, "fails", "tm_raise", notify="on")
    press(client, failing, "start")
    report = finished_report(failing)
    for channel in ("email", "slack", "webhook"):
        wait_for(
            lambda channel=channel: "could not be sent by %s" % channel in node.log(),
            message="the %s failure in the log" % channel,
        )
    log = node.log()
    assert "HTTP Error 500" in log
    assert "channel_not_found" in log
    report.refresh_from_db()
    failing.refresh_from_db()
    assert report.result == "FAILED"
    assert report.end_reason == "exception: ValueError"
    assert failing.last_result == "FAILED"
    assert failing.status == Task.Status.IDLE
    # The spooler goes on running tasks.
    ok = add_task(client, commands, "fine", "tm_ok", notify="on")
    press(client, ok, "start")
    assert finished_report(ok).result == "OK"


def test_interrupted_run_sends_a_failure_notice(uwsgi_node, endpoints, commands):
    """A spooler process killed in the middle of a run: recovery closes the run and notifies."""
    webhook = endpoints()
    # A host name of its own: the session's shared server (on this database, with no webhook) must
    # not judge this run by its pid and close it first, sending the notice by its own settings; it
    # would wait for the heartbeat to go stale (a minute), by when this node has closed the run.
    node = uwsgi_node(
        {"TASKMANAGER_NOTIFY_WEBHOOK_URL": webhook.url},
        env={"TM_TEST_HOSTNAME": "notifying-node.invalid"},
        spooler_processes=1,
    )
    client = node.admin
    task = add_task(client, commands, "long run", "tm_sleep", "--seconds 60", notify="on")
    press(client, task, "start")
    report = wait_for(
        lambda: Report.objects.filter(task=task, pid__isnull=False, supervisor_pid__isnull=False).first(),
        message="the run to start",
    )
    os.kill(report.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: webhook.requests, timeout=60, message="the notice of the interrupted run")
    assert events(webhook) == [("failure", report.pk)]
    assert webhook.requests[0]["data"]["report"]["end_reason"] == "interrupted"
    # Recorded as an interrupted run on the report, the task and the chart's history (issue 16).
    assert webhook.requests[0]["data"]["report"]["end_kind"] == "interrupted"
    closed = Report.objects.get(pk=report.pk)
    assert (closed.result, closed.end_kind, closed.exit_code) == ("FAILED", "interrupted", None)
    assert Task.objects.get(pk=task.pk).last_end_kind == "interrupted"
    assert list(RunHistory.objects.filter(task=task).values_list("result", "end_kind")) == [
        ("FAILED", "interrupted")
    ]


def test_errors_and_warnings_notify_by_setting(uwsgi_node, endpoints, commands):
    webhook = endpoints()
    node = uwsgi_node(
        {"TASKMANAGER_NOTIFY_WEBHOOK_URL": webhook.url, "TASKMANAGER_NOTIFY_ON": ["FAILED", "ERRORS"]},
        spooler_processes=1,
    )
    client = node.admin
    errors = add_task(client, commands, "with errors", "tm_error", notify="on")
    warnings = add_task(client, commands, "with warnings", "tm_warn", notify="on")
    press(client, warnings, "start")
    assert finished_report(warnings).result == "WARNINGS"
    press(client, errors, "start")
    report = finished_report(errors)
    assert report.result == "ERRORS"
    wait_for(lambda: webhook.requests, message="the errors webhook")
    assert events(webhook) == [("failure", report.pk)]
    assert webhook.requests[0]["data"]["text"] == "Task with errors ended with errors"


def test_notify_box_on_the_task_page(server, admin_http, commands):
    task = add_task(admin_http, commands, "boxed", "tm_ok", notify="on")
    page = admin_http.get("/admin/taskmanager/task/%d/change/" % task.pk)
    assert 'name="notify"' in page.text
    assert "send notifications" in page.text.lower()


def test_no_channel_no_notification_query_at_a_runs_end(uwsgi_node, commands):
    """Issue 17: with no channel configured (the test settings: no ADMINS, no webhook, no Slack) a
    failing run's end asks the database nothing about notices: the failure mark stays unset."""
    node = uwsgi_node({}, spooler_processes=1)
    failing = add_task(node.admin, commands, "fails quietly", "tm_fail", notify="on")
    after = add_task(node.admin, commands, "runs after", "tm_ok")
    press(node.admin, failing, "start")
    assert finished_report(failing).result == "FAILED"
    # One spooler process: once the next run ended, the first run's end is all done.
    press(node.admin, after, "start")
    assert finished_report(after).result == "OK"
    assert not Task.objects.get(pk=failing.pk).failure_notified


def test_notify_run_end_without_a_channel_runs_no_query(commands):
    task = make_task(commands, "unheard", failure_notified=True)
    report = make_report(task, result="FAILED")
    assert not notifications.channels_configured()
    with CaptureQueriesContext(connection) as queries:
        assert notifications.notify_run_end(task, report) == []
    assert [q["sql"] for q in queries] == []
    with override_settings(TASKMANAGER_NOTIFY_WEBHOOK_URL="http://127.0.0.1:9/"):
        assert notifications.channels_configured()


# -- the decision, in-process (no channel configured: nothing is sent) ----------------


def finished(task, result, **fields):
    return make_report(task, result=result, **fields)


@override_settings(TASKMANAGER_NOTIFY_ON=["FAILED", "WARNINGS"])
def test_decide_follows_the_failure_streak(commands):
    task = make_task(commands, "streak")
    kinds = []
    for result in ["OK", "WARNINGS", "FAILED", "ERRORS", "OK", "FAILED"]:
        notice = notifications.decide(task, finished(task, result))
        kinds.append(notice.kind if notice else None)
    assert kinds == [None, "failure", "failure", "recovered", None, "failure"]
    task.refresh_from_db()
    assert task.failure_notified


@override_settings(TASKMANAGER_NOTIFY_RECOVERED=False)
def test_recovered_notices_can_be_turned_off(commands):
    task = make_task(commands, "no recovery notice")
    assert notifications.decide(task, finished(task, "FAILED")).kind == "failure"
    assert notifications.decide(task, finished(task, "OK")) is None
    task.refresh_from_db()
    assert not task.failure_notified


@override_settings(ADMINS=[("Ops", "ops@example.com"), "dev@example.com"])
def test_recipients_default_to_admins():
    assert notifications.email_recipients() == ["ops@example.com", "dev@example.com"]
    with override_settings(TASKMANAGER_NOTIFY_EMAIL_RECIPIENTS=[]):
        assert notifications.email_recipients() == []

"""Secrets never reach the store (issue 14).

A command printing the project's secrets every way it can, run by a real
uWSGI spooler: no secret is in a LogLine row, the report's fields, the
viewer, the follow JSON, the download, the task page or the failure notice.
The redaction a process keeps between runs (issue 17) follows a secret that
changes: a setting changed by ``override_settings``, an environment variable
a spooler process's own code sets between two runs.
"""

import json

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from taskmanager import redaction, spoolfiles
from taskmanager.models import LogLine

from .support.admin import add_task, press
from .support.objects import log_texts
from .support.reading import read_report
from .support.recorder import events
from .support.spool import put_file
from .support.waits import finished_report, finished_reports, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

#: The secrets of the node, by where they come from.
SECRETS = {
    "SECRET_KEY": "sk-node-9f8e7d6c5b4a",
    "SECRET_KEY_FALLBACKS": "sk-old-1a2b3c4d5e",
    "a DATABASES password": "db-pass-31337x",
    "the password of DATABASE_URL": "dburl-pass-8086",
    "EMAIL_HOST_PASSWORD": "mail-pass-2468",
    "the password of a CACHES URL": "cache-pass-777",
    "a setting named by TASKMANAGER_REDACT_SETTINGS": "pay-secret-42424242",
    "an environment variable": "envtok-5150-abcdef",
    "a URL's password": "url-pass-4417",
    "a signed URL's signature": "0a1b2c3d4e5f",
    "a bearer token": "eyJhbGciOi.payload.sig",
    "a TASKMANAGER_REDACT_PATTERNS match": "cust-998877",
}
#: The webhook's path: a webhook URL is a credential.
HOOK_PATH = "/hook-s3cr3t-path"


def node_settings(webhook_url):
    return {
        "SECRET_KEY": SECRETS["SECRET_KEY"],
        "SECRET_KEY_FALLBACKS": [SECRETS["SECRET_KEY_FALLBACKS"]],
        "EXTRA_DATABASES": {
            "reporting": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": ":memory:",
                "PASSWORD": SECRETS["a DATABASES password"],
            }
        },
        "EMAIL_HOST_PASSWORD": SECRETS["EMAIL_HOST_PASSWORD"],
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "redis://:%s@cache.internal:6379/0" % SECRETS["the password of a CACHES URL"],
            }
        },
        "PAYMENT_PROVIDER_SECRET": SECRETS["a setting named by TASKMANAGER_REDACT_SETTINGS"],
        "TASKMANAGER_REDACT_SETTINGS": ["PAYMENT_PROVIDER_SECRET"],
        "TASKMANAGER_REDACT_PATTERNS": [r"cust-\d{6}"],
        "TASKMANAGER_NOTIFY_WEBHOOK_URL": webhook_url,
    }


def leaks(text: str) -> list[str]:
    """The names of the secrets (and the webhook path) found in ``text``."""
    found = [name for name, value in SECRETS.items() if value in text]
    return found + (["the webhook URL"] if HOOK_PATH in text else [])


@pytest.mark.db_sensitive
def test_secrets_never_reach_the_store(uwsgi_node, endpoints, commands, monkeypatch):
    monkeypatch.setenv("TM_TEST_API_TOKEN", SECRETS["an environment variable"])
    monkeypatch.setenv(
        "DATABASE_URL", "postgres://app:%s@db.internal/app" % SECRETS["the password of DATABASE_URL"]
    )
    webhook = endpoints()
    node = uwsgi_node(node_settings(webhook.url + HOOK_PATH), spooler_processes=1)
    client = node.admin
    task = add_task(client, commands, "secrets", "tm_secrets", notify="on")
    press(client, task, "start")
    report = finished_report(task)
    assert report.result == "FAILED"
    wait_for(lambda: events(webhook) == [("failure", report.pk)], message="the failure notice")

    texts = log_texts(report)
    stored = "\n".join(texts)
    assert leaks(stored) == [], stored
    for field in ("command_line", "end_reason", "progress_message"):
        assert leaks(getattr(report, field)) == [], field
    # The marker stands where each secret was; what is around it stays.
    for expected in (
        "secret key: [redacted]",
        "old key: [redacted]",
        "database password: [redacted]",
        "database url: [redacted]",
        "e-mail password: [redacted]",
        "cache: redis://:[redacted]@cache.internal:6379/0",
        "webhook: [redacted]",
        "named by the project: [redacted]",
        "token from the environment: [redacted]",
        "dsn: postgres://bob:[redacted]@db.example.com:5432/x",
        "signed: https://bucket.example.com/f?X-Amz-Signature=[redacted]&X-Amz-Date=1",
        "header: Authorization: Bearer [redacted]",
        "customer number: [redacted]",
        "on stderr: [redacted]",
        "logged [redacted]\nand on a second line [redacted]",
    ):
        assert expected in texts, expected
    assert "RuntimeError: could not connect with [redacted]" in stored
    assert report.progress_message == "progress [redacted]"
    assert not LogLine.objects.filter(text__contains="pass-").exclude(text__contains="[redacted]").exists()

    served = read_report(client, report)
    for name, resp in served.items():
        assert resp.status == 200, name
        assert leaks(resp.text) == [], name
    assert "secret key: [redacted]" in served["download"].text
    page = client.get("/admin/taskmanager/task/%d/change/" % task.pk)
    assert page.status == 200 and leaks(page.text) == []
    notice = json.dumps(webhook.requests[0]["data"])
    assert leaks(notice) == [], notice
    assert "could not connect with [redacted]" in notice


def test_redactor_unit(settings, monkeypatch):
    settings.SECRET_KEY = "unit-secret-key-123"
    settings.TASKMANAGER_REDACT_PATTERNS = [r"acct-\d+", "(unclosed"]
    redact, errors = redaction.redactor({"MY_API_TOKEN": "tok-abcdef", "SHORT_TOKEN": "abc", "HOME": "/root"})
    assert len(errors) == 1 and "(unclosed" in errors[0]
    assert redact("k=unit-secret-key-123 t=tok-abcdef s=abc h=/root acct-991") == (
        "k=[redacted] t=[redacted] s=abc h=/root [redacted]"
    )
    assert (
        redact("mysql://u:p4ss@h/db and http://host:8080/x@y")
        == "mysql://u:[redacted]@h/db and http://host:8080/x@y"
    )
    assert redact("") == ""


def test_a_pattern_that_is_no_regular_expression_is_a_settings_error(settings):
    from taskmanager import checks

    settings.TASKMANAGER_REDACT_PATTERNS = [r"cust-\d+", "(unclosed"]
    errors = [m for m in checks.check_settings() if m.id == "taskmanager.E001"]
    assert (
        len(errors) == 1 and "TASKMANAGER_REDACT_PATTERNS" in errors[0].msg and "(unclosed" in errors[0].msg
    )
    settings.TASKMANAGER_REDACT_PATTERNS = [r"cust-\d+"]
    assert not [m for m in checks.check_settings() if m.id == "taskmanager.E001"]


def test_a_changed_setting_is_redacted_at_once():
    redact = redaction.redactor()[0]
    assert redaction.redactor()[0] is redact  # kept between runs
    with override_settings(SECRET_KEY="rotated-key-5150", TASKMANAGER_REDACT_SETTINGS=["PAYMENT_SECRET"]):
        assert redaction.redactor()[0]("k=rotated-key-5150") == "k=[redacted]"
        # A setting the project names, changed alone (not one of the app's).
        with override_settings(PAYMENT_SECRET="pay-rotated-7788"):
            assert (
                redaction.redactor()[0]("p=pay-rotated-7788 k=rotated-key-5150")
                == "p=[redacted] k=[redacted]"
            )
        assert redaction.redactor()[0]("p=pay-rotated-7788") == "p=pay-rotated-7788"
    assert redaction.redactor()[0]("k=rotated-key-5150") == "k=rotated-key-5150"
    with override_settings():  # put back at its end
        assert redaction.redactor()[0]("k=by-hand-key-4242") == "k=by-hand-key-4242"
        django_settings.SECRET_KEY = "by-hand-key-4242"  # by hand, as Django forbids: no signal
        assert redaction.redactor()[0]("k=by-hand-key-4242") == "k=[redacted]"


def test_an_environment_variable_the_spooler_sets_between_runs_is_redacted(uwsgi_node, commands, tmp_path):
    secret = "rotated-env-token-6061"
    node = uwsgi_node(spooler_processes=1)  # one spooler: it runs both runs and the project's function
    task = add_task(node.admin, commands, "echo-env", "tm_echo", secret)
    press(node.admin, task, "start")
    assert secret in log_texts(finished_report(task))  # no secret yet: that redaction is kept
    marker = tmp_path / "set"
    entry = {
        b"ud_spool_func": b"testapp_setenv",
        b"name": b"TM_TEST_ROTATED_TOKEN",
        b"value": secret.encode(),
    }
    entry.update({b"path": str(marker).encode(), b"ud_spool_ret": b"-2"})
    put_file(node.spool_dir, "test_setenv", spoolfiles.encode(entry))
    wait_for(
        lambda: marker.exists() and marker.read_text() == "set", message="the variable set in the spooler"
    )
    press(node.admin, task, "start")
    report = finished_reports(task, count=2)[-1]
    texts = log_texts(report)
    assert "[redacted]" in texts and not [text for text in texts if secret in text], texts
    assert secret not in report.command_line

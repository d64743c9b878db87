"""A failed run's log and counts (issue 13, item 8).

Runs go through the real uWSGI server (admin Start -> spooler -> forked child
-> supervisor -> database); the counts are read where a user reads them: the
report, the log viewer's ALL / WARNING / ERROR filters, the task list.
"""

import re
from urllib.parse import urlencode

import pytest

from taskmanager import logcapture

from .support.admin import TASK_URL, run_to_end
from .support.objects import log_texts

pytestmark = pytest.mark.django_db(transaction=True)

LOG_URL = "/admin/taskmanager/report/%d/log/"
ROW_RE = re.compile(r'<tr class="tm-level-[\w-]+" id="L(\d+)">')
SPAN_RE = r'<span id="tm-log-%s">(\d+)</span>'


def viewer_seqs(client, report, level):
    page = client.get(LOG_URL % report.pk + "?level=" + level)
    assert page.status == 200
    return [int(seq) for seq in ROW_RE.findall(page.text)], page.text


def assert_counts_match_viewer(client, task, report):
    """Report, viewer and task list give the counts of the lines the viewer's filters show."""
    rows = list(report.log_lines.order_by("seq").values("seq", "level", "stream"))
    # The app's own lines (source "taskmanager") are never counted; these runs have none,
    # so every line the viewer shows is a line of the command, and counted.
    assert [r for r in rows if r["stream"] == logcapture.SYSTEM] == []
    shown = {level: viewer_seqs(client, report, level) for level in ("ALL", "WARNING", "ERROR")}
    assert shown["ALL"][0] == [r["seq"] for r in rows]
    assert shown["WARNING"][0] == [r["seq"] for r in rows if r["level"] >= logcapture.WARNING]
    assert shown["ERROR"][0] == [r["seq"] for r in rows if r["level"] >= logcapture.ERROR]
    lines, warnings, errors = (
        len(shown["ALL"][0]),
        len(shown["WARNING"][0]) - len(shown["ERROR"][0]),
        len(shown["ERROR"][0]),
    )
    assert (report.lines, report.warnings, report.errors) == (lines, warnings, errors), log_texts(report)
    summary = shown["ALL"][1]
    for name, value in (("lines", lines), ("warnings", warnings), ("errors", errors)):
        assert int(re.search(SPAN_RE % name, summary).group(1)) == value, name
    task.refresh_from_db()
    assert (task.errors, task.warnings) == (errors, warnings)
    listing = client.get(TASK_URL + "?" + urlencode({"q": task.name})).text
    row = next(tr for tr in listing.split("<tr")[1:] if "/%d/change/" % task.pk in tr)
    found = re.search(
        r'tm-count-errors[^"]*">(\d+)</span> / <span class="tm-count-warnings[^"]*">(\d+)<', row
    )
    assert found and (int(found.group(1)), int(found.group(2))) == (errors, warnings), row


def traceback_frames(text):
    """Return the function names of the frames of the first traceback in ``text``."""
    return re.findall(r'^  File "[^"]*", line \d+, in (\S+)$', text.split("\n\nDuring handling", 1)[0], re.M)


def test_raised_exception_counts_as_an_error_line(server, admin_http, commands):
    task, report = run_to_end(admin_http, commands, "raise counts", "tm_raise")
    assert (report.result, report.end_reason) == ("FAILED", "exception: ValueError")
    assert_counts_match_viewer(admin_http, task, report)
    assert (report.lines, report.warnings, report.errors) == (2, 0, 1)
    last = report.log_lines.order_by("seq").last()
    assert last.level == logcapture.ERROR and last.stream == logcapture.STDERR
    assert last.text.startswith("Traceback (most recent call last):")
    assert last.text.endswith("ValueError: boom from tm_raise")


def test_traceback_starts_at_handle(server, admin_http, commands):
    """No runner, call_command or execute frames above handle(); the ORM's frames below it stay."""
    task, report = run_to_end(admin_http, commands, "orm failure", "tm_fail", "--orm")
    assert (report.result, report.end_reason) == ("FAILED", "exception: DoesNotExist")
    assert_counts_match_viewer(admin_http, task, report)
    text = log_texts(report)[-1]
    frames = traceback_frames(text)
    assert frames[:2] == ["handle", "look_up"], text
    assert "get" in frames[2:], text  # QuerySet.get, in django/db/models/query.py
    assert "django/db/models/" in text
    for hidden in ("run_command", "call_command", "execute", "child_main", "taskmanager/runner"):
        assert hidden not in text
    assert text.endswith("Task.DoesNotExist: Task matching query does not exist.")


def test_command_error_is_one_line(server, admin_http, commands):
    task, report = run_to_end(admin_http, commands, "command error", "tm_fail")
    assert (report.result, report.end_reason) == ("FAILED", "exception: CommandError")
    assert log_texts(report) == ["about to fail", "CommandError: no such file: missing.csv"]
    last = report.log_lines.order_by("seq").last()
    assert (last.level, last.stream) == (logcapture.ERROR, logcapture.STDERR)
    assert_counts_match_viewer(admin_http, task, report)
    assert (report.lines, report.warnings, report.errors) == (2, 0, 1)


def test_command_error_with_traceback_option(server, admin_http, commands):
    task, report = run_to_end(admin_http, commands, "command error tb", "tm_fail", "--traceback")
    assert (report.result, report.end_reason) == ("FAILED", "exception: CommandError")
    assert_counts_match_viewer(admin_http, task, report)
    texts = log_texts(report)
    assert len(texts) == 2 and texts[0] == "about to fail"
    assert traceback_frames(texts[1]) == ["handle"], texts[1]
    assert texts[1].endswith("CommandError: no such file: missing.csv")

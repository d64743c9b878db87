"""Logs at any size (issue 5): capture, storage, viewer, follow, download, retention.

The runs go through the real uWSGI server (admin Start -> spooler -> forked
child -> supervisor -> database) and the viewer is read over HTTP. Unit tests
of the pure parts (line splitting, style markers, link rendering) come last.
"""

import html
import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskmanager import history, logcapture, logstore, logviews, retention
from taskmanager.models import AuditEntry, LogLine, Report, RunHistory, Task
from taskmanager.recovery import periodic_steps

from .support.admin import add_task, press, run_to_end
from .support.adminclient import AdminClient, client_for
from .support.browser import login
from .support.objects import add_log_lines, make_report, make_task
from .support.procs import reset_peak, vm_kib
from .support.waits import finished_reports, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

LOG_URL = "/admin/taskmanager/report/%d/log/"
ROW_RE = re.compile(r'<tr class="(tm-level-[\w-]+)" id="L(\d+)">(.*?)</tr>', re.S)


def rows(report):
    return list(report.log_lines.order_by("seq").values("seq", "level", "stream", "text", "severity"))


def page_rows(text):
    """Return [(css class, seq, row html)] of a viewer page."""
    return [(css, int(seq), body) for css, seq, body in ROW_RE.findall(text)]


def get_json(client, url):
    resp = client.get(url)
    assert resp.status == 200, resp.text[:1000]
    return json.loads(resp.text)


# -- capture: every channel, its level, its order ------------------------------------


@pytest.fixture
def mixed_run(server, admin_http, commands):
    task, report = run_to_end(
        admin_http, commands, "mix", "tm_logmix", "--long %d" % (logcapture.MAX_LINE_CHARS + 10), timeout=60
    )
    return task, report


def one(lines, text, stream=None):
    found = [r for r in lines if r["text"] == text and (stream is None or r["stream"] == stream)]
    assert len(found) == 1, (text, found, [r["text"][:80] for r in lines])
    return found[0]


@pytest.mark.db_sensitive
def test_every_channel_is_captured_once_with_its_level(mixed_run):
    task, report = mixed_run
    lines = rows(report)
    expected = {
        # self.stdout / self.stderr, with and without styles
        ("stdout", "out 1 plain"): 20,
        ("stdout", "out 2 success"): 25,
        ("stdout", "out 3 notice"): 22,
        ("stdout", "out 4 warning"): 30,
        ("stdout", "out 5 error"): 40,
        ("stdout", "out 6 first"): 30,
        ("stdout", "out 6 second"): 30,
        ("stdout", "out 7 after styles"): 20,
        ("stderr", "err 1 plain"): 40,
        ("stderr", "err 2 styled warning"): 30,
        # logging, also a logger with propagate=False; the test settings give
        # root a console handler: still one row per record
        ("logging", "log debug"): 10,
        ("logging", "log info"): 20,
        ("logging", "log warning"): 30,
        ("logging", "log error"): 40,
        ("logging", "log critical"): 50,
        ("logging", "private warning"): 30,
        # fd 1 and 2: print, sys.stderr, a subprocess
        ("stdout", "print 1"): 20,
        ("stderr", "print 2 to stderr"): 30,
        ("stdout", "sub out 1"): 20,
        ("stderr", "sub err 1"): 30,
        # invalid UTF-8 and NUL become U+FFFD; \r keeps the last state; ANSI goes
        ("stdout", "sub bad \ufffd\ufffd utf8 and nul \ufffd here"): 20,
        ("stdout", "sub progress 100%"): 20,
        ("stdout", "sub green"): 20,
        ("stdout", "sub no final newline"): 20,
        ("stdout", "out nul \ufffd and lone surrogate \ufffd in a record"): 20,
        ("stdout", "out red"): 20,
        ("stdout", "out 100%"): 20,
        ("stdout", "out last without newline"): 20,
    }
    for (stream, text), level in expected.items():
        row = one(lines, text, stream)
        assert row["level"] == level, (text, row)
        assert row["severity"] == logcapture.severity(level)
    exception = [r for r in lines if r["text"].startswith("log exception\n")]
    assert len(exception) == 1 and exception[0]["level"] == 40
    assert "ZeroDivisionError: division by zero" in exception[0]["text"]
    python_warning = [r for r in lines if "UserWarning: python warning" in r["text"]]
    assert (
        len(python_warning) == 1
        and python_warning[0]["stream"] == "stderr"
        and python_warning[0]["level"] == 30
    )
    # The 1 MiB + 10 characters line: one row of MAX_LINE_CHARS, then the rest.
    long_rows = [r for r in lines if r["text"] and set(r["text"]) == {"L"}]
    assert [len(r["text"]) for r in long_rows] == [logcapture.MAX_LINE_CHARS, 10]
    # No stray rows: markers, escape codes or NUL never reach the database.
    assert not any("\x1b" in r["text"] or "\x00" in r["text"] for r in lines)


@pytest.mark.db_sensitive
def test_order_within_each_source_and_counts_from_levels(mixed_run):
    task, report = mixed_run
    lines = rows(report)
    seq = {(r["stream"], r["text"]): r["seq"] for r in lines}
    sources = [
        [
            "out 1 plain",
            "out 2 success",
            "out 3 notice",
            "out 4 warning",
            "out 5 error",
            "out 6 first",
            "out 6 second",
            "out 7 after styles",
            "out nul \ufffd and lone surrogate \ufffd in a record",
            "out red",
            "out 100%",
            "out last without newline",
        ],
        [
            "print 1",
            "sub out 1",
            "sub bad \ufffd\ufffd utf8 and nul \ufffd here",
            "sub progress 100%",
            "sub green",
            "sub no final newline",
        ],
    ]
    for source in sources:
        positions = [seq[("stdout", text)] for text in source]
        assert positions == sorted(positions), source
    assert seq[("stderr", "err 1 plain")] < seq[("stderr", "err 2 styled warning")]
    assert seq[("stderr", "print 2 to stderr")] < seq[("stderr", "sub err 1")]
    logged = ["log debug", "log info", "log warning", "log error", "log critical"]
    assert [seq[("logging", t)] for t in logged] == sorted(seq[("logging", t)] for t in logged)
    # Line numbers are 1..N with no gap.
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1))
    # Counts come from levels; the app's own lines (stream "taskmanager") never count.
    counted = [r for r in lines if r["stream"] != "taskmanager"]
    assert report.lines == len(counted)
    assert report.warnings == sum(1 for r in counted if 30 <= r["level"] < 40)
    assert report.errors == sum(1 for r in counted if r["level"] >= 40)
    # out 5, err 1, log error, log critical, log exception: each record once.
    assert report.errors == 5
    assert report.result == "ERRORS"
    assert report.end_reason == "completed"
    task.refresh_from_db()
    assert (task.errors, task.warnings, task.last_result) == (report.errors, report.warnings, "ERRORS")


# -- viewer: escaping, links, filters, search, paging -------------------------------------


def test_viewer_escapes_and_links_safely(mixed_run, admin_http):
    task, report = mixed_run
    page = admin_http.get(LOG_URL % report.pk)
    assert page.status == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert (
        '<a href="https://example.com/a?b=1&amp;c=" rel="noopener nofollow noreferrer" target="_blank">'
        "https://example.com/a?b=1&amp;c=</a>&lt;x&gt;" in page.text
    )
    assert 'href="javascript' not in page.text.lower()
    assert "javascript:alert(2)" in page.text  # shown as text, not a link
    # The long line is cut on the page, whole in the download.
    assert "only the first %d characters are shown" % logviews.SHOWN_CHARS in page.text
    assert "L" * (logviews.SHOWN_CHARS + 1) not in page.text
    # Report page and the task page's inline link to the viewer.
    for url in (
        "/admin/taskmanager/report/%d/change/" % report.pk,
        "/admin/taskmanager/task/%d/change/" % task.pk,
    ):
        assert LOG_URL % report.pk in admin_http.get(url).text


def test_log_page_breadcrumbs_go_through_tasks_and_reports(server, admin_http, commands):
    """Home › Task manager › Tasks › the task › its Reports › the report › Log (issue 16, item 9)."""
    task = make_task(commands, "crumbs")
    report = make_report(task)
    other = make_report(make_task(commands, "elsewhere"))
    text = admin_http.get(LOG_URL % report.pk).text
    crumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', text, re.S).group(1)
    links = re.findall(r'<a href="([^"]*)">([^<]*)</a>', crumbs)
    assert links == [
        ("/admin/", "Home"),
        ("/admin/taskmanager/", "Task manager"),
        ("/admin/taskmanager/task/", "Tasks"),
        ("/admin/taskmanager/task/%d/change/" % task.pk, "crumbs"),
        ("/admin/taskmanager/report/?task__id__exact=%d" % task.pk, "Reports"),
        ("/admin/taskmanager/report/%d/change/" % report.pk, html.escape(str(report))),
    ]
    assert crumbs.rstrip().endswith("&rsaquo; Log")
    # "Reports" lists the task's reports only.
    listing = admin_http.get(links[4][0])
    assert listing.status == 200 and "/report/%d/change/" % report.pk in listing.text
    assert "/report/%d/change/" % other.pk not in listing.text


def test_level_filters_and_search(mixed_run, admin_http):
    task, report = mixed_run
    lines = rows(report)
    for level, minimum in (("ALL", 0), ("WARNING", 30), ("ERROR", 40)):
        page = admin_http.get(LOG_URL % report.pk + "?level=" + level)
        assert page.status == 200
        shown = [seq for _css, seq, _body in page_rows(page.text)]
        assert shown == [r["seq"] for r in lines if r["level"] >= minimum], level
    page = admin_http.get(LOG_URL % report.pk + "?level=ALL&q=SUB+ERR")
    assert [seq for _c, seq, _b in page_rows(page.text)] == [
        r["seq"] for r in lines if "sub err" in r["text"]
    ]
    page = admin_http.get(LOG_URL % report.pk + "?level=ERROR&q=plain")
    assert [seq for _c, seq, _b in page_rows(page.text)] == [one(lines, "err 1 plain")["seq"]]
    page = admin_http.get(LOG_URL % report.pk + "?level=ERROR&q=nothing-like-this")
    assert page_rows(page.text) == [] and "No line matches this search at this level." in page.text
    # Bad parameters fall back to defaults instead of failing.
    assert admin_http.get(LOG_URL % report.pk + "?level=bogus&after=x&before=-3").status == 200
    assert admin_http.get(LOG_URL % 999999).status == 404


def test_keyset_pages_in_constant_queries(transactional_db, commands):
    """Pages of a long log cost the same queries at its start, middle and end."""
    task = make_task(commands, "paging")
    report = make_report(task)
    total = 3000
    add_log_lines(
        report,
        [
            (40 if seq % 100 == 0 else 30 if seq % 10 == 0 else 20, "line %d" % seq)
            for seq in range(1, total + 1)
        ],
    )
    counts = []
    for level, expected_total in (("ALL", total), ("WARNING", total // 10), ("ERROR", total // 100)):
        seen = []
        after = None
        while True:
            with CaptureQueriesContext(connection) as queries:
                page = logstore.read_page(report.pk, level, after=after, size=7)
            after = page.last_seq
            counts.append((level, len(queries)))
            seen += [r["seq"] for r in page.rows]
            if not page.has_after:
                break
        assert len(seen) == expected_total and seen == sorted(seen), level
        # Backwards from the end gives the same lines.
        page = logstore.read_page(report.pk, level, last=True, size=7)
        back = [r["seq"] for r in page.rows]
        while page.has_before:
            page = logstore.read_page(report.pk, level, before=page.first_seq, size=7)
            back = [r["seq"] for r in page.rows] + back
        assert back == seen, level
    per_level = {}
    for level, count in counts:
        per_level.setdefault(level, set()).add(count)
    # One query per index range plus one EXISTS, wherever the page is.
    assert per_level == {"ALL": {2}, "WARNING": {3}, "ERROR": {2}}, counts


def test_search_pages_forward_and_back(transactional_db, commands, monkeypatch):
    """A text search reads the log in windows and pages through every match, both ways."""
    monkeypatch.setattr(logstore, "SEARCH_WINDOW", 40)
    task = make_task(commands, "search")
    report = make_report(task)
    total = 2500
    rows_ = add_log_lines(
        report, [(40 if seq % 7 == 0 else 20, "Line %d" % seq) for seq in range(1, total + 1)]
    )
    for level, minimum in (("ALL", 0), ("ERROR", 40)):
        expected = [
            seq for _r, seq, lvl, _s, _st, _t, text in rows_ if "line 1" in text.lower() and lvl >= minimum
        ]
        seen, after = [], None
        while True:
            page = logstore.read_page(report.pk, level, "LINE 1", after=after, size=9)
            seen += [r["seq"] for r in page.rows]
            after = page.last_seq
            if not page.has_after:
                break
        assert seen == expected, level
        page = logstore.read_page(report.pk, level, "line 1", last=True, size=9)
        back = [r["seq"] for r in page.rows]
        assert not page.has_after
        while page.has_before:
            page = logstore.read_page(report.pk, level, "line 1", before=page.first_seq, size=9)
            back = [r["seq"] for r in page.rows] + back
        assert back == expected, level
    # A word on the last line only: found from the start, through every window.
    assert [r["seq"] for r in logstore.read_page(report.pk, "ALL", "line 2500").rows] == [2500]
    assert logstore.read_page(report.pk, "ALL", "no such text").rows == []


# -- live follow and download -----------------------------------------------------------


def test_live_follow_while_running(server, admin_http, commands):
    # 6 s of lines: the first poll below comes while the run goes on, also on a loaded machine.
    task = add_task(admin_http, commands, "drip", "tm_drip", "--lines 12, --tick 0.5")
    press(admin_http, task, "start")
    report = wait_for(lambda: Report.objects.filter(task=task).first(), message="the run to start")
    page = admin_http.get(LOG_URL % report.pk + "?level=ALL")
    assert page.status == 200
    if Report.objects.get(pk=report.pk).is_running:
        assert 'data-follow="1"' in page.text
        assert "The run is still going" in page.text
    follow = "/admin/taskmanager/report/%d/log/follow/?level=ALL" % report.pk
    seen, answers = [], []

    def poll():  # as the page does, about once a second
        cursor = answers[-1]["cursor"] if answers else 0
        data = get_json(admin_http, follow + "&after=%d" % cursor)
        answers.append(data)
        seen.extend((line["seq"], line["html"]) for line in data["lines"])
        assert data["cursor"] >= cursor
        return not data["running"] and not data["more"]

    wait_for(poll, interval=0.5, message="the followed run to end")
    assert any(a["running"] for a in answers), "never saw the run going"
    assert "The run has finished" in answers[-1]["status"]
    stored = list(report.log_lines.order_by("seq").values_list("seq", "text"))
    assert seen == [(seq, html.escape(text)) for seq, text in stored]
    assert [t for _s, t in stored] == ["drip %d" % n for n in range(1, 13)]
    assert answers[-1]["counts"] == {"lines": 12, "warnings": 6, "errors": 0}
    # Follow with a filter: only warnings, cursor past the last line gives nothing.
    data = get_json(admin_http, "/admin/taskmanager/report/%d/log/follow/?level=WARNING&after=0" % report.pk)
    assert [line["seq"] for line in data["lines"]] == [seq for seq, t in stored if int(t.split()[1]) % 2 == 0]
    data = get_json(admin_http, follow + "&after=%d" % stored[-1][0])
    assert data["lines"] == [] and data["cursor"] == stored[-1][0] and not data["running"]
    # A finished run's page does not follow.
    assert 'data-follow="0"' in admin_http.get(LOG_URL % report.pk).text


def test_running_log_opens_at_its_end(server, admin_http, commands):
    """A running report's log opens at its last lines and follows; an earlier page says how to follow."""
    task = make_task(commands, "long-running")
    report = make_report(task, running=True)  # alive: recovery leaves the run alone
    total = logviews.PAGE_LINES + 100
    add_log_lines(report, ["row %d" % n for n in range(1, total + 1)])
    page = admin_http.get(LOG_URL % report.pk)
    seqs = [seq for _c, seq, _b in page_rows(page.text)]
    assert seqs == list(range(total - logviews.PAGE_LINES + 1, total + 1))
    assert 'data-follow="1"' in page.text and 'data-cursor="%d"' % total in page.text
    assert "new lines appear here as they are written" in page.text
    first = admin_http.get(LOG_URL % report.pk + "?level=ALL&after=0")
    assert [seq for _c, seq, _b in page_rows(first.text)][0] == 1
    assert 'data-follow="0"' in first.text
    assert "open the last lines to follow it" in first.text
    # Each line number links to the page starting at that line.
    assert 'href="%s?level=ALL&amp;after=0#L1"' % (LOG_URL % report.pk) in first.text


def test_download_is_the_whole_log(mixed_run, admin_http, server):
    task, report = mixed_run
    from urllib.request import Request

    request = Request(admin_http.base + "/admin/taskmanager/report/%d/log/download/" % report.pk)
    with admin_http.opener.open(request, timeout=60) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert resp.headers["Content-Disposition"] == 'attachment; filename="mix-report-%d.log"' % report.pk
        assert resp.headers.get("Content-Length") is None  # streamed
        body = resp.read().decode("utf-8")
    lines = rows(report)
    expected = "".join(
        logstore.format_line(timezone.localtime(r.timestamp), r.level, r.stream, r.text)
        for r in report.log_lines.order_by("seq")
    )
    header, rest = body.split("\n", 1)
    assert header.startswith("Log of mix @")
    assert rest == expected
    assert "L" * logcapture.MAX_LINE_CHARS in rest
    assert "<script>alert(1)</script>" in rest  # plain text, served as an attachment
    assert len(lines) > 30


@pytest.mark.browser
def test_browser_follows_a_running_log(browser, static_server, superuser, commands):
    """The page's script appends new lines while the run goes on, escapes them, and stops at the end."""
    from playwright.sync_api import expect

    base = static_server.url
    client = client_for(base, "admin")
    task = add_task(client, commands, "drip-browser", "tm_drip", "--lines 16, --tick 0.5, --hostile")
    page = browser.new_page()
    login(page, base, "admin")
    press(client, task, "start")
    report = wait_for(lambda: Report.objects.filter(task=task).first(), message="the run to start")
    page.goto(base + LOG_URL % report.pk)
    first_rows = page.locator("#tm-log tbody tr[id]").count()
    expect(page.locator("#tm-log")).to_have_attribute("data-follow", "1")
    expect(page.locator("#tm-log-status")).to_contain_text("still going")
    # New lines arrive without a reload, then the status says the run ended.
    expect(page.locator("#L16")).to_contain_text("drip 16", timeout=60_000)
    expect(page.locator("#tm-log")).to_have_attribute("data-follow", "done", timeout=60_000)
    expect(page.locator("#tm-log-status")).to_contain_text("has finished")
    expect(page.locator("#tm-log-warnings")).to_have_text("8")
    assert first_rows < 16, "the page was loaded after the run ended: nothing was followed"
    assert page.locator("#tm-log tbody tr[id]").count() == 16
    # The hostile line arrived through the follow endpoint: shown as text, never run.
    expect(page.locator("#L3")).to_contain_text('<img src=x onerror="window.tmInjected=1">')
    assert page.evaluate("window.tmInjected === undefined")
    link = page.locator('#L3 a[href="http://example.com/x"]')
    expect(link).to_have_attribute("rel", "noopener nofollow noreferrer")
    assert page.locator("#L3 img, #L3 script").count() == 0
    expect(page.locator("#L4")).to_have_class(re.compile("tm-level-warning"))


@pytest.mark.browser
def test_browser_stops_following_a_deleted_report(browser, static_server, superuser, commands):
    from playwright.sync_api import expect

    task = make_task(commands, "to-delete")
    report = make_report(task, running=True)  # alive: recovery leaves the run alone
    add_log_lines(report, ["first"])
    page = browser.new_page()
    login(page, static_server.url, "admin")
    page.goto(static_server.url + LOG_URL % report.pk)
    expect(page.locator("#tm-log")).to_have_attribute("data-follow", "1")
    add_log_lines(report, ["second"], first=2)
    expect(page.locator("#L2")).to_contain_text("second")
    report.delete()
    expect(page.locator("#tm-log-status")).to_have_text("This report does not exist (any more).")
    expect(page.locator("#tm-log")).to_have_attribute("data-follow", "gone")


# -- permissions -----------------------------------------------------------------------


def test_viewer_needs_view_report_permission(server, staff, commands):
    task = make_task(commands, "perm-log")
    report = make_report(task)
    add_log_lines(report, ["secret line"])
    urls = [
        LOG_URL % report.pk,
        "/admin/taskmanager/report/%d/log/follow/?after=0" % report.pk,
        "/admin/taskmanager/report/%d/log/download/" % report.pk,
    ]
    anonymous = AdminClient(server.url)
    for url in urls:
        resp = anonymous.get(url, follow=False)
        assert resp.status == 302 and "/admin/login/" in resp.url, (url, resp.status)
    staff(username="nobody")
    nobody = client_for(server.url, "nobody")
    for url in urls:
        resp = nobody.get(url)
        assert resp.status == 403 and "secret line" not in resp.text, url
    staff("view_report", username="viewer")
    client = client_for(server.url, "viewer")
    for url in urls:
        resp = client.get(url)
        assert resp.status == 200 and "secret line" in resp.text, url


# -- retention ---------------------------------------------------------------------------


def run_once(client, task, seen: list) -> int:
    """Start ``task`` and wait for its next finished report and for the task to be idle; return the report's pk."""
    press(client, task, "start")
    done = wait_for(
        lambda: (
            Report.objects.filter(task=task, finished_datetime__isnull=False)
            .exclude(pk__in=seen)
            .values_list("pk", flat=True)
            .first()
        ),
        timeout=60,
        message="the next run of %s" % task.name,
    )
    seen.append(done)
    wait_for(lambda: Task.objects.get(pk=task.pk).status == "IDLE", message="the task to be idle")
    return done


@pytest.mark.db_sensitive
def test_retention_keeps_the_last_reports_of_each_task_only(uwsgi_node, commands):
    keep = 5  # TASKMANAGER_REPORTS_KEPT's default, which the node uses
    # The periodic pass prunes between the runs' ends that do (every retention.PRUNE_EVERY-th).
    node = uwsgi_node({"TASKMANAGER_RECOVERY_SECONDS": 1})
    admin_http = node.admin
    other = add_task(admin_http, commands, "other-task", "tm_ok", "--lines 3")
    press(admin_http, other, "start")
    other_report = finished_reports(other, timeout=60)[0]
    task = add_task(admin_http, commands, "pruned-task", "tm_ok", "--lines 3")
    # A run in progress (its supervisor "alive": this test process) older
    # than every finished report must survive pruning.
    running = make_report(task, running=True, invocation_datetime=timezone.now() - timedelta(days=1))
    add_log_lines(running, ["still going"])
    runs = keep + 2
    ids = []
    for _ in range(runs):
        run_once(admin_http, task, ids)
    # The periodic pass prunes (every second here): wait for it.
    wait_for(
        lambda: Report.objects.filter(task=task, finished_datetime__isnull=False).count() == keep,
        message="pruning to %d reports" % keep,
    )
    first_ids = ids[: runs - keep]
    finished = list(Report.objects.filter(task=task, finished_datetime__isnull=False).order_by("pk"))
    assert len(finished) == keep
    assert not Report.objects.filter(pk__in=first_ids).exists()
    assert not LogLine.objects.filter(report_id__in=first_ids).exists()
    assert all(r.log_lines.count() == 4 for r in finished)
    # The running report and the other task's report are untouched.
    assert Report.objects.filter(pk=running.pk, finished_datetime__isnull=True).exists()
    assert running.log_lines.count() == 1
    assert Report.objects.filter(pk=other_report.pk).exists() and other_report.log_lines.count() == 4


@pytest.mark.db_sensitive
def test_runs_prune_every_nth_run_and_the_periodic_pass_in_between(uwsgi_node, commands):
    """Issue 17: a run's end does not prune (a DELETE and an audit entry) every time: a spooler
    process prunes a task at every retention.PRUNE_EVERY-th run of it, the periodic pass prunes
    in between. Two reports kept here (the session's server keeps 5: it never prunes below that)."""
    keep = 2
    node = uwsgi_node(
        {
            "TASKMANAGER_REPORTS_KEPT": keep,
            "TASKMANAGER_HISTORY_KEPT": keep,
            "TASKMANAGER_RECOVERY_SECONDS": 0,
        },
        spooler_processes=1,
    )
    task = add_task(node.admin, commands, "pruned now and then", "tm_noop")
    finished = Report.objects.filter(task=task, finished_datetime__isnull=False)
    prunes = AuditEntry.objects.filter(action="prune", object_id=str(task.pk))
    ids = []
    for _ in range(keep + 1):
        run_once(node.admin, task, ids)
    # Before issue 17 the end of the third run deleted the first, in its own transaction;
    # and its history row (the chart shows the last TASKMANAGER_HISTORY_KEPT all the same).
    assert finished.count() == keep + 1 and not prunes.exists()
    assert RunHistory.objects.filter(task=task).count() == keep + 1
    assert (retention.prune_over_limit, ()) in periodic_steps()
    retention.prune_over_limit(keep=keep)
    assert sorted(finished.values_list("pk", flat=True)) == ids[-keep:]
    assert prunes.count() == 1
    # The pass prunes the run history too (a spooler with the pass prunes nothing at its runs' ends).
    assert (history.prune_over_limit, ()) in periodic_steps()
    history.prune_over_limit(keep=keep)
    assert RunHistory.objects.filter(task=task).count() == keep
    while len(ids) < retention.PRUNE_EVERY - 1:
        run_once(node.admin, task, ids)
    # (The session's server, if running, may have pruned down to its 5 meanwhile.)
    assert finished.count() > keep
    # The PRUNE_EVERY-th run of the task in this spooler process prunes, in its end's transaction.
    run_once(node.admin, task, ids)
    assert sorted(finished.values_list("pk", flat=True)) == ids[-keep:]
    assert RunHistory.objects.filter(task=task).count() == keep


@pytest.mark.db_sensitive
def test_log_lines_are_deleted_in_chunks(transactional_db, commands):
    task = make_task(commands, "chunks")
    reports = [make_report(task) for _ in range(2)]
    size = retention.CHUNK * 2 + 17
    for report in reports:
        add_log_lines(report, ["x"] * size)
    with CaptureQueriesContext(connection) as queries:
        retention.delete_log(reports[0].pk)
    deletes = [q["sql"] for q in queries if q["sql"].upper().startswith("DELETE")]
    assert len(deletes) == 3, deletes
    assert not LogLine.objects.filter(report=reports[0]).exists()
    assert LogLine.objects.filter(report=reports[1]).count() == size


# -- memory stays flat at 1,000,000 lines --------------------------------------------------


def test_a_million_lines_keep_memory_flat(server, admin_http, commands):
    """Peak RSS growth of the supervising spooler and of the child stays under a generous 64 MB."""
    spoolers = [pid for pid in server.spooler_pids() if vm_kib(pid, "VmRSS")]
    for pid in spoolers:
        reset_peak(pid)
    before = {pid: vm_kib(pid, "VmRSS") for pid in spoolers}
    task, report = run_to_end(
        admin_http, commands, "million", "tm_spam", "--lines 1000000, --memory", timeout=600
    )
    assert report.result == "OK", report.end_reason
    assert report.lines == 1_000_001
    last = report.log_lines.order_by("-seq").first()
    assert last.seq == 1_000_001
    child = re.search(r"rss_start_kib=(\d+) hwm_kib=(\d+)", last.text)
    child_growth = int(child.group(2)) - int(child.group(1))
    assert report.supervisor_pid in before
    supervisor_growth = vm_kib(report.supervisor_pid, "VmHWM") - before[report.supervisor_pid]
    assert child_growth < 64 * 1024, child_growth
    assert supervisor_growth < 64 * 1024, supervisor_growth
    # The viewer's last page of the million-line log is there at once.
    page = admin_http.get(LOG_URL % report.pk + "?last=1")
    assert page_rows(page.text)[-1][1] == 1_000_001


# -- pure parts ----------------------------------------------------------------------------


def test_line_buffer_splits_decodes_and_bounds():
    buf = logcapture.LineBuffer(max_bytes=10)
    assert buf.feed(b"abc\r") == []
    assert buf.feed(b"\nprog 1\rprog 2\rpro") == ["abc"]
    assert buf.feed(b"g 3\n") == ["prog 3"]
    assert buf.feed("ab\u00e9\u00e9\u00e9\u00e9\u00e9".encode()) == ["ab\u00e9\u00e9\u00e9\u00e9"]
    assert buf.close() == ["\u00e9"]
    assert buf.feed(b"bad \xff\x00\n") == ["bad \ufffd\x00"]


def test_style_markers_span_lines():
    style = logcapture.level_style()
    marks = logcapture.LevelMarks()
    text = style.ERROR("a\nb") + "\nc " + style.SUCCESS("d")
    assert [marks.split(line, 20) for line in text.split("\n")] == [(40, "a"), (40, "b"), (25, "c d")]
    assert logcapture.split_level("plain", 30) == (30, "plain")


def test_clean_text():
    assert logcapture.clean_text("\x1b[1;31mred\x1b[0m \x00 \udcff ok") == "red \ufffd \ufffd ok"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "see https://ex.com/x.",
            'see <a href="https://ex.com/x" rel="noopener nofollow noreferrer" '
            'target="_blank">https://ex.com/x</a>.',
        ),
        (
            "(http://ex.com/a_(b))",
            '(<a href="http://ex.com/a_(b)" rel="noopener nofollow noreferrer" '
            'target="_blank">http://ex.com/a_(b)</a>)',
        ),
        ('<img src=x onerror="alert(1)">', "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"),
        (
            "javascript:alert(1) ftp://x data:text/html,<b>",
            "javascript:alert(1) ftp://x data:text/html,&lt;b&gt;",
        ),
        (
            'http://ex.com/"onmouseover="x',
            '<a href="http://ex.com/" rel="noopener nofollow noreferrer" '
            'target="_blank">http://ex.com/</a>&quot;onmouseover=&quot;x',
        ),
    ],
)
def test_render_text(text, expected):
    assert str(logviews.render_text(text)) == expected

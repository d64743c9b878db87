"""The admin as users meet it (issue 6): forms, pages, progress, history, escaping, i18n.

Most tests drive the admin of the real uWSGI server over HTTP; the query
count test uses Django's test client in-process, where queries can be
counted.
"""

import html
import os
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskmanager import dbclock, display, progress
from taskmanager.models import Command, Report, RunHistory, Task, TaskCategory

from .support.admin import TASK_URL, add_task, status_json, task_form
from .support.adminclient import client_for, form_errors
from .support.objects import make_report, make_task
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


# -- arguments checked at save, through the real server ------------------------------


@pytest.mark.parametrize(
    "command, arguments, expected",
    [
        ("tm_ok", "--colour red", "unrecognized arguments: --colour red"),
        ("tm_required", "--count 2", "the following arguments are required: --name"),
        ("tm_ok", "--lines many", "argument --lines: invalid int value: 'many'"),
        ("tm_required", "--name bob, --mode medium", "argument --mode: invalid choice: 'medium'"),
        ("tm_ok", "--word 'unclosed", "Unbalanced quotes"),
        ("tm_ok", "--help", "--help is not allowed as a task argument"),
        ("tm_ok", "-h", "-h is not allowed as a task argument"),
        ("tm_ok", "--version", "--version is not allowed as a task argument"),
    ],
)
def test_bad_arguments_are_a_form_error(server, admin_http, commands, command, arguments, expected):
    damned = server.log().count("DAMN")
    resp = admin_http.post(TASK_URL + "add/", task_form(commands, "bad", command, arguments))
    assert resp.status == 200
    assert expected in form_errors(resp)
    assert not Task.objects.filter(name="bad").exists()
    # The worker that parsed --help/--version is alive and well: no respawn.
    assert admin_http.get(TASK_URL).status == 200
    assert server.log().count("DAMN") == damned


def test_good_arguments_are_saved_and_previewed(server, admin_http, commands):
    task = add_task(
        admin_http, commands, "greet", "tm_required", "--name 'Ada Lovelace', --count=2, --mode slow"
    )
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    expected = "manage.py tm_required --name &#x27;Ada Lovelace&#x27; --count=2 --mode slow"
    assert '<code class="tm-command-line">%s</code>' % expected in page


def test_editing_arguments_is_checked_too(server, admin_http, commands):
    task = add_task(admin_http, commands, "edit-me", "tm_ok", "--lines 1")
    resp = admin_http.post(
        TASK_URL + "%d/change/" % task.pk, task_form(commands, "edit-me", "tm_ok", "--nope")
    )
    assert "unrecognized arguments: --nope" in form_errors(resp)
    task.refresh_from_db()
    assert task.arguments == "--lines 1"


def test_only_active_commands_can_be_chosen(server, admin_http, commands):
    Command.objects.filter(name="tm_warn").update(active=False)
    page = admin_http.get(TASK_URL + "add/").text
    assert '<option value="%d">' % commands["tm_ok"].pk in page
    assert '<option value="%d">' % commands["tm_warn"].pk not in page
    resp = admin_http.post(TASK_URL + "add/", task_form(commands, "inactive", "tm_warn"))
    assert "Select a valid choice" in form_errors(resp)
    assert not Task.objects.filter(name="inactive").exists()


def test_command_page_shows_its_syntax(server, admin_http, commands):
    page = admin_http.get("/admin/taskmanager/command/%d/change/" % commands["tm_required"].pk).text
    syntax = html.unescape(re.search(r'<pre class="tm-syntax">(.*?)</pre>', page, re.S).group(1))
    assert "usage: manage.py tm_required" in syntax
    assert "--name NAME" in syntax and "who to greet" in syntax
    assert "{fast,slow}" in syntax


def test_commands_come_from_collect_commands_only(server, admin_http, commands):
    """No "Add command"; on a command's page only *active* can be changed."""
    listing = admin_http.get("/admin/taskmanager/command/").text
    assert "/admin/taskmanager/command/add/" not in listing
    assert admin_http.get("/admin/taskmanager/command/add/").status == 403
    command = commands["tm_required"]
    url = "/admin/taskmanager/command/%d/change/" % command.pk
    page = admin_http.get(url).text
    assert 'name="active"' in page
    assert 'name="name"' not in page and 'name="app_name"' not in page
    assert '<div class="readonly">tm_required</div>' in page
    # Name and app sent anyway are ignored; unticking active is saved.
    resp = admin_http.post(
        url,
        {
            "name": "renamed",
            "app_name": "elsewhere",
            "run_by": "permission",
            "approved_arguments-TOTAL_FORMS": "0",
            "approved_arguments-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )
    assert resp.status == 200 and "was changed successfully" in resp.text
    command.refresh_from_db()
    assert (command.name, command.app_name, command.active) == ("tm_required", "tests.testapp", False)


def test_a_message_shows_the_name_as_typed_and_the_date_to_the_second(server, admin_http, commands):
    """The name keeps its small letter (the admin capitalises a message's first letter: the name is
    quoted), and the time is the app's one format, with seconds (issue 16, items 8 and 11)."""
    day = timezone.localtime() + timedelta(days=2)
    task = add_task(
        admin_http, commands, "dated", "tm_ok", scheduling_0=day.strftime("%Y-%m-%d"), scheduling_1="03:39:07"
    )
    texts = []
    for _press in range(2):
        resp = admin_http.post(TASK_URL + "%d/start/" % task.pk)
        texts += re.findall(r'<ul class="messagelist">\s*<li class="\w+">(.*?)</li>', resp.text, re.S)
    task.refresh_from_db()
    when = "%s 03:39:07" % day.strftime("%Y-%m-%d")
    assert [html.unescape(t) for t in texts] == [
        "“dated” is scheduled: next run %s." % when,
        "“dated” is already scheduled: next run %s." % when,
    ]
    # A cancelled entry stays in the spool directory until its time: remove
    # it, so that the session's spool directory holds no entry for later tests.
    os.unlink(task.spooler_id)
    admin_http.post(TASK_URL + "%d/stop/" % task.pk)


# -- GET never changes anything ----------------------------------------------------


@pytest.mark.parametrize("button", ["start", "stop", "run-now"])
def test_buttons_refuse_get(server, admin_http, commands, button):
    task = add_task(admin_http, commands, "get-" + button, "tm_ok")
    resp = admin_http.get(TASK_URL + "%d/%s/" % (task.pk, button))
    assert resp.status == 405
    task.refresh_from_db()
    assert (task.status, task.run_token, task.run_now_token) == ("IDLE", "", "")
    assert not Report.objects.filter(task=task).exists()


# -- progress, history, list columns ----------------------------------------------


def test_progress_bar_moves_and_history_is_kept(server, admin_http, commands):
    task = add_task(admin_http, commands, "progress", "tm_progress", "--steps 12, --tick 0.4")
    assert "was started" in admin_http.post(TASK_URL + "%d/start/" % task.pk).text
    seen = []

    def moving():
        info = status_json(admin_http, task)[str(task.pk)]
        if info["running"] and info["percent"] is not None:
            seen.append(info["percent"])
        return len({p for p in seen if 0 < p < 100}) >= 2

    wait_for(moving, timeout=60, interval=0.2, message="two intermediate progress values")
    assert seen == sorted(seen)
    listing = admin_http.get(TASK_URL).text
    assert 'role="progressbar"' in listing and "left" in listing  # bar with an ETA in the list
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    assert 'role="progressbar"' in page
    assert re.search(r"\d+% \(\d+ of 12\)", page)
    finished_report(task, timeout=60)
    report = Report.objects.get(task=task)
    assert (report.progress_done, report.progress_total, report.progress_message) == (12, 12, "step 12")
    history = list(RunHistory.objects.filter(task=task))
    assert len(history) == 1 and history[0].result == "OK"
    assert history[0].started == report.invocation_datetime
    assert history[0].duration == report.finished_datetime - report.invocation_datetime
    task.refresh_from_db()
    assert task.last_duration == history[0].duration
    info = status_json(admin_http, task)[str(task.pk)]
    assert info["status"] == "IDLE" and not info["running"] and "tm-ok" in info["result_html"]
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    assert page.count('<rect class="tm-run tm-run-ok"') == 1
    listing = admin_http.get(TASK_URL).text
    assert display.format_duration(task.last_duration) in listing


def test_chart_keeps_the_last_runs(server, admin_http, commands, settings):
    from taskmanager import history

    task = add_task(admin_http, commands, "many-runs", "tm_ok")
    start = timezone.now() - timedelta(days=1)
    results = ["OK", "WARNINGS", "ERRORS", "FAILED"]
    for i in range(7):
        when = start + timedelta(minutes=i)
        history.record_run(task.pk, when, when + timedelta(seconds=i + 1), results[i % 4])
    history.prune_history(task.pk, keep=5)
    assert RunHistory.objects.filter(task=task).count() == 5
    page = admin_http.get(TASK_URL + "%d/change/" % task.pk).text
    bars = re.findall(r'<rect class="tm-run tm-run-(\w+)"', page)
    assert bars == ["errors", "failed", "ok", "warnings", "errors"]  # oldest first
    task.refresh_from_db()
    assert task.last_duration == timedelta(seconds=7)


def test_history_limit_setting(transactional_db, settings):
    from taskmanager import history

    settings.TASKMANAGER_HISTORY_KEPT = 3
    command = Command.objects.create(app_name="tests.testapp", name="tm_ok")
    task = Task.objects.create(name="limited", command=command)
    now = timezone.now()
    for i in range(5):
        history.record_run(task.pk, now + timedelta(minutes=i), now + timedelta(minutes=i, seconds=1), "OK")
    kept = [row.started for row in history.last_runs(task.pk)]
    assert kept == [now + timedelta(minutes=i) for i in (2, 3, 4)]


def test_task_list_columns_filters_and_search(server, admin_http, commands):
    cat = TaskCategory.objects.create(name="nightly")
    other = TaskCategory.objects.create(name="reports")
    a = make_task(commands, "alpha", category=cat, note="rebuilds the index")
    b = make_task(
        commands,
        "beta",
        "tm_warn",
        category=other,
        status="SCHEDULED",
        last_result="ERRORS",
        errors=3,
    )
    Task.objects.filter(pk=b.pk).update(
        last_datetime=timezone.now() - timedelta(hours=1), last_duration=timedelta(seconds=185)
    )
    page = admin_http.get(TASK_URL).text
    for header in ("Task", "Status", "Last result", "Errors / warnings", "Last execution", "Next execution"):
        assert ">%s<" % header in page, header
    assert page.index(">alpha<") < page.index(">beta<")  # ordered by name
    # Command and category under the name; the duration under the last execution.
    assert '<span class="tm-sub" title="tm_ok (tests.testapp)">tm_ok · nightly</span>' in page
    assert '<span class="tm-sub">3 min 5 s</span>' in page
    assert '<span class="tm-badge tm-scheduled">Scheduled</span>' in page
    assert '<span class="tm-badge tm-errors">Errors</span>' in page
    assert '<span class="tm-count-errors">3</span> / <span class="tm-count-warnings tm-zero">0</span>' in page
    # The live status returns every cell that can change, as the list and the task page render it
    # (issue 16, item 5).
    cells = status_json(admin_http, b)[str(b.pk)]["cells"]
    columns = {"status_badge", "last_result_badge", "counts", "last_run", "next_run"}
    fields = {
        "last_datetime_display",
        "last_result_badge",
        "last_duration_display",
        "next_datetime_display",
        "errors",
        "warnings",
    }
    assert set(cells) == columns | fields
    for name in columns:
        assert '<td class="field-%s">%s</td>' % (name, cells[name]) in page, name
    task_page = admin_http.get(TASK_URL + "%d/change/" % b.pk).text
    for name in fields:
        shown = re.search(r'field-%s">.*?<div class="readonly">(.*?)</div>' % name, task_page, re.S)
        assert shown.group(1) == cells[name], name

    def names(query):
        text = admin_http.get(TASK_URL + "?" + query).text
        return sorted(n for n in ("alpha", "beta") if ">%s<" % n in text)

    assert names("category__id__exact=%d" % cat.pk) == ["alpha"]
    assert names("status__exact=SCHEDULED") == ["beta"]
    assert names("last_result__exact=ERRORS") == ["beta"]
    assert names("command__app_name=tests.testapp") == ["alpha", "beta"]
    assert names("q=index") == ["alpha"]  # note
    assert names("q=tm_warn") == ["beta"]  # command
    assert names("q=reports") == ["beta"]  # category
    assert names("q=alph") == ["alpha"]  # name
    assert a.pk and b.pk


def test_category_page_lists_its_tasks_with_status(server, admin_http, commands):
    cat = TaskCategory.objects.create(name="weekly")
    make_task(commands, "in-cat", category=cat, status="SPOOLED", last_result="OK")
    make_task(commands, "elsewhere")
    page = admin_http.get("/admin/taskmanager/taskcategory/%d/change/" % cat.pk).text
    assert "in-cat" in page and "elsewhere" not in page
    assert '<span class="tm-badge tm-spooled">Spooled</span>' in page
    assert '<span class="tm-badge tm-ok">OK</span>' in page
    assert "category__id__exact=%d" % cat.pk in admin_http.get("/admin/taskmanager/taskcategory/").text


def test_report_page_shows_the_result_as_a_badge(server, admin_http, commands):
    task = make_task(commands, "badged")
    report = make_report(task, result="WARNINGS", warnings=1)
    page = admin_http.get("/admin/taskmanager/report/%d/change/" % report.pk).text
    result = re.search(r'<div class="form-row field-result_badge">(.*?)</div>\s*</div>', page, re.S)
    assert result, page[:3000]
    assert '<span class="tm-badge tm-warnings">Warnings</span>' in result.group(1)
    assert "taskmanager/taskmanager.css" in page  # the badge colours


# -- escaping -----------------------------------------------------------------------

PAYLOAD = "<img src=x onerror=alert(1)>"


def test_user_and_command_text_is_escaped_everywhere(server, admin_http, commands):
    resp = admin_http.post(
        "/admin/taskmanager/taskcategory/add/",
        {"name": PAYLOAD, "tasks-TOTAL_FORMS": "0", "tasks-INITIAL_FORMS": "0", "_save": "Save"},
    )
    assert resp.status == 200
    category = TaskCategory.objects.get(name=PAYLOAD)
    task = add_task(
        admin_http,
        commands,
        PAYLOAD,
        "tm_echo",
        "'%s'" % PAYLOAD,
        note=PAYLOAD,
        category=category.pk,
    )
    assert task.note == PAYLOAD
    admin_http.post(TASK_URL + "%d/start/" % task.pk)
    report = finished_report(task, timeout=60)
    assert report.lines == 3 and report.log_lines.filter(text__contains=PAYLOAD).count() == 3
    # A bad-arguments error that quotes the payload is escaped too.
    error_page = admin_http.post(TASK_URL + "add/", task_form(commands, "x", "tm_ok", PAYLOAD))
    pages = {
        "changelist": TASK_URL,
        "changelist search": TASK_URL + "?q=img",
        "change form": TASK_URL + "%d/change/" % task.pk,
        "category list": "/admin/taskmanager/taskcategory/",
        "category page": "/admin/taskmanager/taskcategory/%d/change/" % category.pk,
        "report list": "/admin/taskmanager/report/",
        "report page": "/admin/taskmanager/report/%d/change/" % report.pk,
        "log viewer": "/admin/taskmanager/report/%d/log/" % report.pk,
        "log viewer errors": "/admin/taskmanager/report/%d/log/?level=ERROR" % report.pk,
        "status json": TASK_URL + "status/?ids=%d" % task.pk,
    }
    texts = {label: admin_http.get(url) for label, url in pages.items()}
    texts["bad arguments error"] = error_page
    for label, resp in texts.items():
        assert resp.status == 200, label
        assert "<img src=x" not in resp.text, label
    escaped = html.escape(PAYLOAD)
    for label in (
        "changelist",
        "change form",
        "category page",
        "report page",
        "log viewer",
        "bad arguments error",
    ):
        assert escaped in texts[label].text or escaped.replace("'", "&#x27;") in texts[label].text, label
    assert "error: " + escaped in texts["log viewer errors"].text


def test_progress_message_and_chart_are_escaped():
    bar = display.progress_bar(3, 10, PAYLOAD, timezone.now() - timedelta(seconds=3), timezone.now())
    assert "<img" not in bar and html.escape(PAYLOAD) in bar
    run = RunHistory(started=timezone.now(), duration=timedelta(seconds=2), result="OK")
    assert "<rect" in display.runs_chart([run])


# -- the list stays bounded with many tasks ----------------------------------------


def _changelist_queries(client, query=""):
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(TASK_URL + query)
    assert resp.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db(transaction=False)
def test_task_list_queries_do_not_grow_with_rows(admin_client, monkeypatch):
    # The offset to the database's clock is measured once per HEARTBEAT_SECONDS
    # in a process (taskmanager.dbclock), whenever a page comes then: held
    # here, so that only the queries of the page itself are counted.
    monkeypatch.setattr(dbclock, "offset", lambda refresh=True: 0.0)
    categories = [TaskCategory.objects.create(name="cat %d" % i) for i in range(5)]
    command = Command.objects.create(app_name="tests.testapp", name="tm_ok")

    def make(start, count):
        Task.objects.bulk_create(
            Task(
                name="task %05d" % i,
                command=command,
                category=categories[i % 5],
                status="STARTED" if i % 7 == 0 else "IDLE",
                last_result="OK",
                last_duration=timedelta(seconds=i % 50),
            )
            for i in range(start, start + count)
        )
        running = Task.objects.filter(status="STARTED", reports__isnull=True)
        Report.objects.bulk_create(
            Report(task=t, trigger="start", progress_done=1, progress_total=3, progress_at=timezone.now())
            for t in running
        )

    make(0, 10)
    few = _changelist_queries(admin_client)
    few_filtered = _changelist_queries(admin_client, "?status__exact=STARTED&q=task")
    make(10, 9990)
    assert Task.objects.count() == 10000
    many = _changelist_queries(admin_client)
    many_filtered = _changelist_queries(admin_client, "?status__exact=STARTED&q=task")
    assert many == few, (few, many)
    assert many_filtered == few_filtered
    page = admin_client.get(TASK_URL).content.decode()
    assert page.count('role="progressbar"') >= 10  # running rows of the first page show progress
    assert "10000 tasks" in page or "10,000 tasks" in page


@pytest.mark.django_db(transaction=False)
def test_live_status_queries_do_not_grow_with_tasks(admin_client, monkeypatch):
    """The poll of a list's rows (every cell that can change, issue 16) costs the same few queries for 5 or 200."""
    monkeypatch.setattr(dbclock, "offset", lambda refresh=True: 0.0)  # see the test above
    command = Command.objects.create(app_name="tests.testapp", name="tm_ok")
    category = TaskCategory.objects.create(name="cat")
    tasks = Task.objects.bulk_create(
        Task(
            name="task %03d" % i,
            command=command,
            category=category,
            status=("STARTED", "SPOOLED", "IDLE")[i % 3],
            spooler_node="node-%d" % (i % 4),
            last_result="OK",
            last_datetime=timezone.now(),
            next_datetime=timezone.now(),
            last_duration=timedelta(seconds=i),
        )
        for i in range(200)
    )
    Report.objects.bulk_create(
        Report(task=t, trigger="start", progress_done=1, progress_total=3, progress_at=timezone.now())
        for t in tasks
        if t.status == "STARTED"
    )

    def queries(count):
        ids = ",".join(str(t.pk) for t in tasks[:count])
        with CaptureQueriesContext(connection) as ctx:
            resp = admin_client.get(TASK_URL + "status/?ids=" + ids)
        assert resp.status_code == 200 and len(resp.json()["tasks"]) == count
        return len(ctx.captured_queries)

    assert queries(5) == queries(200)


# -- helpers for command authors --------------------------------------------------


def test_progress_helpers_outside_a_run_are_noops():
    assert progress.report_progress(1, 2, "x") is False
    assert list(progress.track([1, 2, 3])) == [1, 2, 3]
    with pytest.raises(ValueError):
        progress.report_progress(-1, 2)


def test_progress_record_round_trip_and_eta():
    class Sink:
        def __init__(self):
            self.records = []

        def write(self, level, stream, text):
            self.records.append((stream, text))

    sink = Sink()
    progress.attach(sink)
    try:
        assert progress.report_progress(5, 10, "half") is True
        assert progress.report_progress(6, 10) is False  # too soon after the previous one
        assert progress.report_progress(10, 10, "done") is True  # the final one always goes
    finally:
        progress.attach(None)
    assert [s for s, _ in sink.records] == [progress.PROGRESS_STREAM] * 2
    assert progress.parse_record(sink.records[0][1]) == {
        "progress_done": 5,
        "progress_total": 10,
        "progress_message": "half",
    }
    assert progress.parse_record("nonsense") is None
    assert progress.percent(1, 4) == 25.0 and progress.percent(1, None) is None
    t0 = timezone.now()
    # 10 units in 20 s, 30 more to do, reported 5 s ago: 60 - 5 = 55 s left.
    assert progress.eta_seconds(10, 40, t0, t0 + timedelta(seconds=20), t0 + timedelta(seconds=25)) == 55.0
    assert progress.eta_seconds(0, 40, t0, t0, t0) is None


@pytest.mark.parametrize(
    "seconds, text",
    [(0.42, "0.4 s"), (12.4, "12 s"), (185, "3 min 5 s"), (7440, "2 h 4 min"), (None, "-")],
)
def test_format_duration(seconds, text):
    value = None if seconds is None else timedelta(seconds=seconds)
    assert display.format_duration(value) == text


# -- Italian ------------------------------------------------------------------------


def test_admin_speaks_italian(server, commands, superuser):
    client = client_for(server.url, "admin", language="it")
    task = make_task(commands, "it", last_result="WARNINGS")
    index = client.get("/admin/").text
    assert "Gestione attività" in index
    listing = client.get(TASK_URL).text
    assert "Ultimo risultato" in listing and "Avvisi" in listing
    assert "Avvia le attività selezionate" in listing
    page = client.get(TASK_URL + "%d/change/" % task.pk).text
    for text in ("Definizione", "Pianificazione", "Ultima esecuzione", "Avvia", "Esegui ora", "Ferma"):
        assert text in page, text
    resp = client.post(TASK_URL + "%d/start/" % task.pk, {})
    assert resp.status == 200
    assert "è stata avviata" in resp.text or "non è stata avviata" in resp.text
    resp = client.post(TASK_URL + "add/", task_form(commands, "bad-it", "tm_ok", "--help"))
    assert "non è ammesso come argomento" in html.unescape(resp.text)


def test_every_string_has_an_italian_translation(tmp_path):
    """makemessages over the app finds no string without an Italian translation, and the .mo is fresh."""
    import gettext
    import os
    import shutil
    import subprocess
    from pathlib import Path

    import taskmanager

    source = Path(taskmanager.__file__).parent
    copy = tmp_path / "taskmanager"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    cwd = os.getcwd()
    os.chdir(copy)
    try:
        call_command_quiet("makemessages", locale=["it"], no_location=True, no_obsolete=True)
    finally:
        os.chdir(cwd)
    po = copy / "locale" / "it" / "LC_MESSAGES" / "django.po"
    untranslated = subprocess.run(
        ["msgattrib", "--untranslated", "--no-obsolete", str(po)], capture_output=True, text=True, check=True
    ).stdout
    # Long msgids are wrapped over several lines (msgid "" then "..." lines).
    missing = [
        text
        for text in (
            "".join(re.findall(r'"(.*)"', block))
            for block in re.findall(r'^msgid ((?:".*"\n)+)msgstr', untranslated, re.M)
        )
        if text
    ]
    assert not missing, (
        "strings without an Italian translation (run makemessages and translate): %s" % missing
    )
    fuzzy = subprocess.run(
        ["msgattrib", "--only-fuzzy", str(po)], capture_output=True, text=True, check=True
    ).stdout
    assert "msgid" not in fuzzy, "fuzzy translations to review:\n" + fuzzy
    shipped = source / "locale" / "it" / "LC_MESSAGES"
    compiled = tmp_path / "fresh.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(shipped / "django.po")], check=True)
    with open(compiled, "rb") as fresh, open(shipped / "django.mo", "rb") as mo:
        assert gettext.GNUTranslations(fresh)._catalog == gettext.GNUTranslations(mo)._catalog, (
            "django.mo is older than django.po: run django-admin compilemessages"
        )


def call_command_quiet(name, **options):
    from io import StringIO

    from django.core.management import call_command

    call_command(name, stdout=StringIO(), stderr=StringIO(), verbosity=0, **options)

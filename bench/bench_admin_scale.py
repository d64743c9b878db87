"""Benchmark the admin at scale: the task list with 10,000 tasks and 50,000 reports, and a task page.

Usage::

    python bench/bench_admin_scale.py [--quick] [--db sqlite|postgresql] [--keep]

Setup (bulk inserts, not timed): 10,000 tasks over 20 categories and every
collected command, with varied status / last result (two of them running), 5
finished reports each (50,000), 5 run-history rows each; the task shown on the
task page has 5 reports of 40 log lines and a full run history.

For each page: the number of SQL queries and the server time, measured
in-process (``django.test.Client`` + ``CaptureQueriesContext``: the view with
its middleware and template, no HTTP), and the time through HTTP on a real
uWSGI serving the same database (client clock, median of the repeats).
Targets: task list <= 15 queries and <= 300 ms at 10,000 tasks.

Then the list's Start action on 1,000 new tasks of a command that does
nothing (one POST selecting all the tasks of a search): the web worker's
CPU time per task (from ``/proc``, the spool writes on commit included),
its SQL statements and durable commits (``bench/benchapp/counters.py``) and
the POST's time; target (issue 17) <= 0.5 ms of web CPU per task. Floor: the
worker's CPU per entry of as many bare ``uwsgi.spool()`` calls in one request
(``bench/benchapp/floor.py``), mostly kernel time.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.common import print_table, summary, verdict  # noqa: E402

FULL = {"tasks": 10_000, "reports_per_task": 5, "repeat": 7}
QUICK = {"tasks": 2_000, "reports_per_task": 5, "repeat": 3}
BULK_START = 1_000
TARGETS = {"changelist_queries": 15, "changelist_ms": 300.0, "bulk_start_cpu_ms_per_task": 0.5}


def populate(count: int, reports_per_task: int) -> int:
    """Create the tasks, reports, history and log lines; return the pk of the task-page task."""
    from django.utils import timezone

    from taskmanager.models import Command, LogLine, Report, RunHistory, Task, TaskCategory

    rng = random.Random(8)
    now = timezone.now()
    commands = list(Command.objects.all())
    TaskCategory.objects.bulk_create([TaskCategory(name="category %02d" % i) for i in range(20)])
    categories = list(TaskCategory.objects.all())
    results = [Task.Result.OK] * 6 + [Task.Result.WARNINGS, Task.Result.ERRORS, Task.Result.FAILED]
    tasks = []
    for i in range(count):
        status = Task.Status.SCHEDULED if i % 3 == 0 else Task.Status.IDLE
        last = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
        tasks.append(
            Task(
                name="scale task %05d" % i,
                command=commands[i % len(commands)],
                category=categories[i % len(categories)] if i % 7 else None,
                arguments="",
                note="a note about task %d" % i,
                status=status,
                next_datetime=now + timedelta(minutes=rng.randint(1, 10_000))
                if status != Task.Status.IDLE
                else None,
                repetition_period="hour" if status != Task.Status.IDLE else "",
                repetition_rate=1 if status != Task.Status.IDLE else None,
                scheduling=now if status != Task.Status.IDLE else None,
                last_datetime=last,
                last_result=rng.choice(results),
                last_duration=timedelta(seconds=rng.randint(1, 600)),
                errors=rng.randint(0, 3),
                warnings=rng.randint(0, 3),
            )
        )
    Task.objects.bulk_create(tasks, batch_size=2000)
    tasks = list(Task.objects.order_by("pk"))
    page_task = tasks[len(tasks) // 2]

    reports, history = [], []
    for task in tasks:
        for k in range(reports_per_task):
            started = task.last_datetime - timedelta(hours=k * 6)
            duration = timedelta(seconds=rng.randint(1, 600))
            result = task.last_result if k == 0 else rng.choice(results)
            reports.append(
                Report(
                    task=task,
                    result=result,
                    invocation_datetime=started,
                    finished_datetime=started + duration,
                    end_reason="completed",
                    trigger=Report.Trigger.SCHEDULE,
                    command_line="manage.py %s" % task.command.name,
                    host="bench",
                    lines=40,
                )
            )
            history.append(RunHistory(task=task, started=started, duration=duration, result=result))
    for k in range(reports_per_task, 100):  # the page task's chart shows up to 100 runs
        started = page_task.last_datetime - timedelta(hours=k * 6)
        history.append(
            RunHistory(task=page_task, started=started, duration=timedelta(seconds=30), result="OK")
        )
    Report.objects.bulk_create(reports, batch_size=5000)
    RunHistory.objects.bulk_create(history, batch_size=5000)

    # Two running tasks, as with two busy spoolers.
    for task in tasks[:2]:
        Task.objects.filter(pk=task.pk).update(status=Task.Status.STARTED)
        Report.objects.create(task=task, trigger=Report.Trigger.START, invocation_datetime=now, heartbeat=now)

    lines = []
    for report in Report.objects.filter(task=page_task):
        for seq in range(1, 41):
            level = LogLine.Level.WARNING if seq % 10 == 0 else LogLine.Level.INFO
            lines.append(
                LogLine(
                    report=report,
                    seq=seq,
                    level=level,
                    stream="stdout",
                    timestamp=now,
                    text="line %d of the log" % seq,
                )
            )
    LogLine.objects.bulk_create(lines, batch_size=5000)
    return page_task.pk


def pages(page_task: int, first_page_ids: list[int], count: int) -> list[tuple[str, str]]:
    last_page = max(0, (count - 1) // 100)
    return [
        ("task list", "/admin/taskmanager/task/"),
        ("task list, filtered (status)", "/admin/taskmanager/task/?status__exact=IDLE"),
        ("task list, search", "/admin/taskmanager/task/?q=task+0042"),
        ("task list, last page", "/admin/taskmanager/task/?p=%d" % last_page),
        ("task page (5 reports)", "/admin/taskmanager/task/%d/change/" % page_task),
        (
            "live status (100 ids)",
            "/admin/taskmanager/task/status/?ids=%s" % ",".join(map(str, first_page_ids)),
        ),
        ("report list (all reports)", "/admin/taskmanager/report/"),
    ]


def in_process(url: str, repeat: int) -> dict:
    """Time ``url`` through django.test.Client; count its queries on the last request."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    status = client.get(url).status_code  # warm-up (templates, caches)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    timed = []

    def timer(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timed.append(((time.perf_counter() - began) * 1000, sql))

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(timer):
        client.get(url)
    slowest = sorted(timed, key=lambda q: q[0], reverse=True)[:3]
    return {
        "status": status,
        "queries": len(queries.captured_queries),
        "ms": summary(times),
        "sql_ms": sum(q[0] for q in timed),
        "slowest_queries": [{"ms": ms, "sql": sql[:300]} for ms, sql in slowest],
    }


def over_http(client, url: str, repeat: int) -> dict:
    client.get(url)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        resp = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return {"status": resp.status, "ms": summary(times)}


def bulk_start(env, server, client, count: int) -> dict:
    """Start ``count`` new ``tm_noop`` tasks with the list's Start action (one POST); the web side's cost."""
    from taskmanager.models import AuditEntry, Command, Task

    command = Command.objects.get(name="tm_noop")
    Task.objects.bulk_create(
        [Task(name="bench-bulk %05d" % i, command=command) for i in range(count)], batch_size=500
    )
    one = Task.objects.filter(name__startswith="bench-bulk ").values_list("pk", flat=True)[0]
    workers = common.worker_pids(server)
    # Floor: as many bare uwsgi.spool() calls in one request (bench/benchapp/floor.py).
    floor_before = common.cpu_seconds(workers)
    client.post("/bench/floor/", {"sent": "%.6f" % time.time(), "count": str(count)}, csrf=False)
    floor = common.cpu_seconds(workers) - floor_before
    before, cpu_before = env.counts().get("worker", {}), common.cpu_seconds(workers)
    sent = time.perf_counter()
    # Every task of the search: a POST may carry at most 1,000 fields (DATA_UPLOAD_MAX_NUMBER_FIELDS).
    resp = client.post(
        "/admin/taskmanager/task/?q=bench-bulk",
        {"action": "start_tasks", "_selected_action": [one], "index": "0", "select_across": "1"},
        follow=False,
    )
    seconds = time.perf_counter() - sent
    cpu = common.cpu_seconds(workers) - cpu_before
    after = env.counts().get("worker", {})
    return {
        "tasks": count,
        "status": resp.status,
        "started": AuditEntry.objects.filter(action="start", object_repr__startswith="bench-bulk ").count(),
        "post_ms": seconds * 1000,
        "cpu_ms_per_task": cpu * 1000 / count,
        "floor_cpu_ms_per_spool": floor * 1000 / count,
        "statements": after.get("statements", 0) - before.get("statements", 0),
        "commits": after.get("commits", 0) - before.get("commits", 0),
    }


def main(argv=None) -> dict:
    args = common.parser(__doc__).parse_args(argv)
    counts = QUICK if args.quick else FULL
    started = time.monotonic()
    env = common.BenchEnv(args.db, keep=args.keep)
    results = common.new_results(args, "admin_scale")
    try:
        setup_started = time.monotonic()
        page_task = populate(counts["tasks"], counts["reports_per_task"])
        from taskmanager.models import Report, Task

        results["tasks"] = Task.objects.count()
        results["reports"] = Report.objects.count()
        results["setup_s"] = time.monotonic() - setup_started
        print(
            "admin at scale: db=%s%s, %d tasks, %d reports (setup %.1f s)"
            % (
                args.db,
                " (quick)" if args.quick else "",
                results["tasks"],
                results["reports"],
                results["setup_s"],
            )
        )
        first_ids = list(Task.objects.order_by("name").values_list("pk", flat=True)[:100])
        server = env.start_server(2)
        http = env.admin(server)
        rows, measured = [], {}
        for label, url in pages(page_task, first_ids, counts["tasks"]):
            local = in_process(url, counts["repeat"])
            remote = over_http(http, url, counts["repeat"])
            measured[label] = {"url": url, "in_process": local, "http": remote}
            check = ""
            if label == "task list":
                check = "%s/%s" % (
                    verdict(local["queries"], TARGETS["changelist_queries"]),
                    verdict(local["ms"]["median"], TARGETS["changelist_ms"]),
                )
            rows.append(
                [
                    label,
                    local["status"],
                    local["queries"],
                    local["sql_ms"],
                    local["ms"]["median"],
                    local["ms"]["max"],
                    remote["ms"]["median"],
                    remote["ms"]["max"],
                    check,
                ]
            )
        bulk = results["bulk_start"] = bulk_start(env, server, http, BULK_START)
        env.stop_server(server)
        results["pages"] = measured
        print_table(
            "Admin at scale: %d tasks, %d reports; server time in-process and through HTTP (uWSGI), ms "
            "(target task list <= 15 queries, <= 300 ms)" % (results["tasks"], results["reports"]),
            ["page", "status", "queries", "SQL ms", "in-process median", "max", "HTTP median", "max", ""],
            rows,
        )
        print_table(
            "Bulk Start: %d tasks started by one list action (HTTP %s, %d started); target <= %.1f ms "
            "of web CPU per task"
            % (bulk["tasks"], bulk["status"], bulk["started"], TARGETS["bulk_start_cpu_ms_per_task"]),
            [
                "",
                "web CPU ms per task",
                "target",
                "POST ms",
                "SQL statements",
                "durable commits",
                "floor: CPU ms per bare spool",
            ],
            [
                [
                    "bulk Start of %d tasks" % bulk["tasks"],
                    bulk["cpu_ms_per_task"],
                    "<= %.1f %s"
                    % (
                        TARGETS["bulk_start_cpu_ms_per_task"],
                        verdict(bulk["cpu_ms_per_task"], TARGETS["bulk_start_cpu_ms_per_task"]),
                    ),
                    bulk["post_ms"],
                    bulk["statements"],
                    bulk["commits"],
                    bulk["floor_cpu_ms_per_spool"],
                ]
            ],
        )
        for label in ("task list", "task page (5 reports)", "report list (all reports)"):
            print("\nslowest queries of the %s:" % label)
            for q in measured[label]["in_process"]["slowest_queries"]:
                print("  %7.2f ms  %s" % (q["ms"], q["sql"][:160]))
    finally:
        env.close()
    results["targets"] = TARGETS
    if "pages" in results:
        listing, page = results["pages"]["task list"], results["pages"]["task page (5 reports)"]
        results["summary"] = {
            "tasks": results["tasks"],
            "list_queries": listing["in_process"]["queries"],
            "list_ms": listing["in_process"]["ms"]["median"],
            "list_http_ms": listing["http"]["ms"]["median"],
            "task_page_queries": page["in_process"]["queries"],
            "task_page_ms": page["in_process"]["ms"]["median"],
            "bulk_start_cpu_ms_per_task": results["bulk_start"]["cpu_ms_per_task"],
        }
    return common.finish(results, started)


if __name__ == "__main__":
    main()

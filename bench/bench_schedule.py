"""How late do scheduled runs start? Measured through a real uWSGI with the shipped spooler settings.

Usage::

    python bench/bench_schedule.py [--quick] [--db sqlite|postgresql] [--keep]

The server is the tests' uWSGI with the shipped ``spooler-frequency`` (read from
``demo/uwsgi.ini``) and 2 spooler processes, as ``demo/uwsgi.ini`` ships them.
Tasks run ``tm_ok`` and are scheduled on whole seconds (as the admin form gives
them), then started with the admin's bulk Start action. For every run:

* **claim lateness**: ``Report.invocation_datetime`` (the moment the spooler
  claimed the run) minus the scheduled time;
* **output lateness**: the timestamp of the command's first log line minus the
  scheduled time.

Scenarios:

1. **one-shot, idle spoolers**: the entry carries ``at`` = the scheduled second;
2. **periodic, next run**: every-minute tasks; the lateness of their *second*
   run, whose entry a spooler wrote when it claimed the first (nobody wakes
   the spoolers for it: only the directory scan finds it);
3. **one spooler busy** on a long run, the other idle;
4. **every spooler busy** on long runs: the entries wait for a spooler; also
   given from the moment the first long run ended.

Nothing asserts; the numbers are for docs/scheduling.rst.
"""

from __future__ import annotations

import math
import os
import sys
import time
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.common import print_table, summary  # noqa: E402

FULL = {"one_shot": 20, "periodic": 8, "busy": 10, "long": 8.0}
QUICK = {"one_shot": 6, "periodic": 3, "busy": 4, "long": 5.0}
#: Spooler processes, as demo/uwsgi.ini ships them.
SPOOLERS = 2


def new_tasks(prefix: str, count: int, command_name: str = "tm_ok", **fields) -> list:
    from taskmanager.models import Command, Task

    command = Command.objects.get(name=command_name)
    Task.objects.bulk_create(
        [Task(name="%s-%03d" % (prefix, i), command=command, **fields) for i in range(count)]
    )
    return list(Task.objects.filter(name__startswith=prefix + "-").order_by("name"))


def bulk(client, action: str, tasks) -> None:
    resp = client.post(
        "/admin/taskmanager/task/",
        {"action": action, "_selected_action": [t.pk for t in tasks], "index": "0"},
        follow=False,
    )
    if resp.status != 302:
        raise RuntimeError("%s answered %s: %s" % (action, resp.status, resp.text[:500]))


def schedule_on_seconds(tasks, lead: int, spread: int = 4, **fields) -> list[datetime]:
    """Give each task a scheduling on a whole second ``lead`` .. ``lead+spread-1`` s ahead."""
    from taskmanager.models import Task

    base = math.ceil(time.time()) + lead
    due = []
    for i, task in enumerate(tasks):
        when = datetime.fromtimestamp(base + i % spread, UTC)
        Task.objects.filter(pk=task.pk).update(scheduling=when, **fields)
        due.append(when)
    return due


def reports_of(task, count: int):
    from taskmanager.models import Report

    rows = list(
        Report.objects.filter(task=task, finished_datetime__isnull=False).order_by("invocation_datetime")
    )
    return rows if len(rows) >= count else None


def first_output(report) -> datetime | None:
    line = report.log_lines.order_by("seq").first()
    return line.timestamp if line else None


def measure(pairs) -> dict:
    """``pairs`` of (report, due): the claim and output lateness summaries, in seconds."""
    claim, output = [], []
    for report, due in pairs:
        claim.append((report.invocation_datetime - due).total_seconds())
        out = first_output(report)
        if out is not None:
            output.append((out - due).total_seconds())
    return {"claim_s": summary(claim), "output_s": summary(output)}


def wait_reports(tasks, count: int, timeout: float) -> list[list]:
    return common.wait_for(
        lambda: all(reports_of(t, count) for t in tasks) and [reports_of(t, count) for t in tasks],
        timeout,
        "%d run(s) of each of %d tasks" % (count, len(tasks)),
        interval=0.1,
    )


def one_shot(client, tasks, lead: int, timeout: float) -> dict:
    due = schedule_on_seconds(tasks, lead)
    bulk(client, "start_tasks", tasks)
    runs = wait_reports(tasks, 1, timeout)
    return measure((r[0], d) for r, d in zip(runs, due, strict=True))


def periodic(client, tasks) -> dict:
    due = schedule_on_seconds(tasks, 2, spread=len(tasks), repetition_period="minute", repetition_rate=1)
    bulk(client, "start_tasks", tasks)
    runs = wait_reports(tasks, 2, 60 + len(tasks) + 60)
    bulk(client, "stop_tasks", tasks)
    result = measure((r[1], d + timedelta(minutes=1)) for r, d in zip(runs, due, strict=True))
    result["first_run"] = measure((r[0], d) for r, d in zip(runs, due, strict=True))
    return result


def busy(client, count: int, busy_spoolers: int, long_seconds: float, prefix: str) -> dict:
    from taskmanager.models import Task

    long_tasks = new_tasks(
        "long" + prefix, busy_spoolers, "tm_sleep", arguments="--seconds %s" % long_seconds
    )
    bulk(client, "start_tasks", long_tasks)
    common.wait_for(
        lambda: (
            Task.objects.filter(pk__in=[t.pk for t in long_tasks], status=Task.Status.STARTED).count()
            == busy_spoolers
        ),
        30,
        "the long runs",
    )
    tasks = new_tasks(prefix, count)
    due = schedule_on_seconds(tasks, 2)
    bulk(client, "start_tasks", tasks)
    runs = wait_reports(tasks, 1, 60 + long_seconds)
    result = measure((r[0], d) for r, d in zip(runs, due, strict=True))
    # Let the long runs end too, so the next scenario starts with idle spoolers.
    long_runs = wait_reports(long_tasks, 1, 60 + long_seconds)
    if busy_spoolers >= SPOOLERS:
        # Lateness counted from when a spooler could take the run at all.
        freed = min(r[0].finished_datetime for r in long_runs)
        result["after_free"] = measure((r[0], max(d, freed)) for r, d in zip(runs, due, strict=True))
    result["long_run_s"] = long_seconds
    return result


def row(label: str, stats: dict) -> list:
    return [label, stats["n"], stats["median"], stats["p95"], stats["max"]]


def main(argv=None) -> dict:
    args = common.parser(__doc__).parse_args(argv)
    counts = QUICK if args.quick else FULL
    started = time.monotonic()
    results = common.new_results(args, "schedule", frequency=True, spoolers=2)
    env = common.BenchEnv(args.db, keep=args.keep)
    print(
        "scheduling lateness: %s, 2 spoolers, %d CPUs" % (common.settings_line(results), os.cpu_count() or 0)
    )
    try:
        server = env.start_server(SPOOLERS)
        client = env.admin(server)
        results["one_shot_idle"] = one_shot(client, new_tasks("once", counts["one_shot"]), 3, 60)
        results["periodic_next_run"] = periodic(client, new_tasks("every-minute", counts["periodic"]))
        results["one_spooler_busy"] = busy(client, counts["busy"], 1, counts["long"], "busy1")
        results["all_spoolers_busy"] = busy(client, counts["busy"], SPOOLERS, counts["long"], "busy2")
        env.stop_server(server)
    finally:
        env.close()
    r = results
    print_table(
        "Lateness of scheduled runs (seconds; claim = run claimed by a spooler, output = first log line)",
        ["scenario", "n", "median", "p95", "max"],
        [
            row("one-shot, idle: claim", r["one_shot_idle"]["claim_s"]),
            row("one-shot, idle: output", r["one_shot_idle"]["output_s"]),
            row("periodic first run: claim", r["periodic_next_run"]["first_run"]["claim_s"]),
            row("periodic next run: claim", r["periodic_next_run"]["claim_s"]),
            row("periodic next run: output", r["periodic_next_run"]["output_s"]),
            row("one spooler busy: claim", r["one_spooler_busy"]["claim_s"]),
            row("all spoolers busy: claim", r["all_spoolers_busy"]["claim_s"]),
            row("all busy: claim - max(due, spooler free)", r["all_spoolers_busy"]["after_free"]["claim_s"]),
        ],
    )
    results["summary"] = {
        "late_one_shot_idle_median_s": r["one_shot_idle"]["claim_s"]["median"],
        "late_one_shot_idle_max_s": r["one_shot_idle"]["claim_s"]["max"],
        "late_periodic_next_max_s": r["periodic_next_run"]["claim_s"]["max"],
        "late_all_busy_after_free_max_s": r["all_spoolers_busy"]["after_free"]["claim_s"]["max"],
    }
    return common.finish(results, started)


if __name__ == "__main__":
    main()

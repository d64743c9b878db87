"""Benchmark throughput, CPU per run and spooler memory: batches of no-op tasks started together.

Usage::

    python bench/bench_throughput.py [--quick] [--db sqlite|postgresql] [--keep]
    python bench/bench_throughput.py --spoolers 1,2 --batches 3 --tasks 1000

What issue 17 gates on, with the shipped settings (``bench.settings``) and
uWSGI as ``demo/uwsgi.ini`` runs it (2 workers, N spooler processes):

* **throughput**: ``--tasks`` no-op tasks (``tm_noop``) started by one admin
  action, ``--batches`` times on the same server; runs per second from the
  first claim to the last report saved (the database's own timestamps), the
  median over the batches (and from the POST being sent, beside it); every
  task exactly once per batch and every report finished, counted, not
  assumed;
* **CPU per run, every process together**: user + system time of the whole
  uWSGI process tree (master, web workers, spoolers, anything they started,
  whether still alive or already reaped) over the batch, divided by the runs.
  This figure barely depends on the machine's load, unlike the rates, and
  ``cores / CPU per run`` is the ceiling the CPU alone puts on throughput;
  split by process: the spooler processes themselves, their fork servers
  (their own time), the runs' children (reaped by a fork server or a
  spooler, or still waiting: a reused child), and the rest (master, web
  workers, anything else);
* **memory**: the resident set of each spooler process (and of every
  long-lived process under it) after each batch; with the full counts
  10 batches of 1,000 runs, so the growth printed is over 10,000 runs.

The floor beside the throughput is the bare uWSGI spool function (same
server, as many entries, spooled by one request; ``bench/benchapp/floor.py``).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.bench_run_path import floor_lines, new_tasks, post_floor, start_action  # noqa: E402
from bench.common import print_table, verdict  # noqa: E402
from tests.support import procs  # noqa: E402

#: The bench's task names start with it; the admin's search selects them all.
PREFIX = "bench-tp"
FULL = {"tasks": 1000, "batches": 10}
QUICK = {"tasks": 200, "batches": 3}
TARGETS = {
    "runs_per_second_2_spoolers": 250.0,
    "cpu_ms_per_run": 8.0,
    "memory_growth_kib_per_1000_runs": 256.0,
}


def tree_cpu_seconds(root: int) -> float:
    """CPU time used so far by the tree under ``root``: its live processes and all they reaped.

    A process that exited and was waited for is counted in its parent's
    children's times (cutime, cstime), so live processes plus those fields
    cover every process that ran under ``root`` since it started.
    """
    return common.cpu_seconds(procs.tree(root))


def cpu_by_role(server, fork_server: bool) -> dict[str, float]:
    """CPU seconds used so far under each spooler process, by role: spooler, fork server, children.

    ``spooler``: the spooler processes' own time. ``children``: the runs'
    children, reaped (the cutime and cstime of the spooler or fork server that
    reaped them) or still alive (a reused child waiting). ``fork_server``: the
    fork servers' own time; with ``fork_server`` False the spooler's live
    children are runs' children (reused ones).
    """
    tick = os.sysconf("SC_CLK_TCK")
    stats = procs._stats()
    kids: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        kids.setdefault(int(fields[1]), []).append(pid)

    def own(pid):
        return sum(int(v) for v in stats[pid][11:13]) if pid in stats else 0

    def reaped(pid):
        return sum(int(v) for v in stats[pid][13:15]) if pid in stats else 0

    def whole(pid):
        return own(pid) + reaped(pid) + sum(whole(k) for k in kids.get(pid, ()))

    def faults(pid):  # minor faults (copy-on-write among them) of pid, its descendants and what it reaped
        mine = sum(int(v) for v in stats[pid][7:9]) if pid in stats else 0
        return mine + sum(faults(k) for k in kids.get(pid, ()))

    found = {"spooler": 0, "fork_server": 0, "children": 0}
    child_faults = 0
    for spooler in server.spooler_pids():
        if spooler not in stats:
            continue
        found["spooler"] += own(spooler)
        found["children"] += reaped(spooler)
        for pid in kids.get(spooler, ()):
            if fork_server:
                found["fork_server"] += own(pid)
                found["children"] += reaped(pid) + sum(whole(k) for k in kids.get(pid, ()))
                child_faults += int(stats[pid][8]) + sum(faults(k) for k in kids.get(pid, ()))
            else:
                found["children"] += whole(pid)
                child_faults += faults(pid)
        child_faults += int(stats[spooler][8])
    return {k: v / tick for k, v in found.items()} | {"children_faults": child_faults}


def rss_kib(pid: int) -> int | None:
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fork_floor_cpu_ms(runs: int = 100) -> float:
    """CPU ms (this process and its children) of ``os.fork()`` and an immediate ``os._exit()``, per fork.

    The bench process is a Django process of the same project and Python,
    about as large as a fork server: the figure is the kernel's share of a
    fresh child (copying and tearing down its page tables) and CPython's
    after-fork work, measured beside each batch so that a reader can tell a
    slower machine from a slower run path (on this kind of virtual machine
    it read 2.9 ms at one moment and 4.5 ms some minutes later).
    """
    from django.db import connections

    connections.close_all()
    before = os.times()
    for _ in range(runs):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0)
        os.waitpid(pid, 0)
    after = os.times()
    spent = sum(after[:4]) - sum(before[:4])  # user, system, children's user and system
    return spent * 1000.0 / runs


def run_batch(env, server, client, tasks) -> dict:
    from django.db.models import Count, Max, Min

    from taskmanager.models import Report, Task
    from taskmanager.runner.child import fork_server_wanted

    root = server.proc.pid
    floor = fork_floor_cpu_ms()
    log_before = len(server.log())
    cpu_before = tree_cpu_seconds(root)
    roles_before = cpu_by_role(server, fork_server_wanted())
    # The batch's reports: those created after the last one of the previous batches.
    last_pk = Report.objects.aggregate(last=Max("pk"))["last"] or 0
    sent, post_seconds = start_action(client, tasks, search=PREFIX)
    ids = [t.pk for t in tasks]
    reports = Report.objects.filter(task_id__in=ids, pk__gt=last_pk)

    def all_done():
        return (
            reports.filter(finished_datetime__isnull=False).count() >= len(tasks)
            and not Task.objects.filter(pk__in=ids).exclude(status=Task.Status.IDLE).exists()
        )

    common.wait_for(all_done, 600, "%d runs" % len(tasks), interval=0.05)
    cpu = tree_cpu_seconds(root) - cpu_before
    roles = {k: v - roles_before[k] for k, v in cpu_by_role(server, fork_server_wanted()).items()}
    child_faults = roles.pop("children_faults")
    time.sleep(0.5)  # any duplicate run would show up now
    per_task = dict(reports.values("task").annotate(n=Count("pk")).values_list("task", "n"))
    bounds = reports.aggregate(first=Min("invocation_datetime"), last=Max("finished_datetime"))
    first, last = bounds["first"].timestamp(), bounds["last"].timestamp()
    log = server.log()[log_before:]
    return {
        "tasks": len(tasks),
        "runs_per_s_first_claim_to_last_report": len(tasks) / max(last - first, 1e-9),
        "runs_per_s_from_post": len(tasks) / max(last - sent, 1e-9),
        "action_post_s": post_seconds,
        "ran_once": sum(1 for pk in ids if per_task.get(pk) == 1),
        "ran_twice_or_more": sum(1 for pk in ids if per_task.get(pk, 0) > 1),
        "without_report": sum(1 for pk in ids if pk not in per_task),
        "unfinished_reports": reports.filter(finished_datetime__isnull=True).count(),
        "database_locked_in_log": len(re.findall(r"database is locked", log)),
        "tracebacks_in_log": log.count("Traceback"),
        "cpu_ms_per_run": cpu * 1000.0 / len(tasks),
        "cpu_ms_per_run_by_role": {k: v * 1000.0 / len(tasks) for k, v in roles.items()},
        "children_minor_faults_per_run": child_faults / len(tasks),
        "floor_fork_cpu_ms": floor,
    }


def bench_series(env, tasks, spoolers: int, batches: int, spool_base: str | None = None) -> dict:
    # Neither statement counters nor timing log: the CPU measured is what a deployment pays.
    server = env.start_server(spoolers, instrumented=False, spool_base=spool_base)
    try:
        client = env.admin(server)
        wanted = len(floor_lines(env)) + len(tasks)
        before = wanted - len(tasks)
        post_floor(client, count=len(tasks))
        common.wait_for(lambda: len(floor_lines(env)) >= wanted, 120, "the floor burst")
        burst = floor_lines(env)[before:]
        floor_rate = len(tasks) / max(max(e for *_x, e in burst) - min(s for _a, s, _b, _c in burst), 1e-9)
        rows, memory = [], []
        for _batch in range(batches):
            row = run_batch(env, server, client, tasks)
            memory.append(
                {
                    # Between batches every run has ended: what is left under a
                    # spooler (a fork server, a reused child) lives on.
                    str(pid): [rss_kib(p) for p in procs.tree(pid)]
                    for pid in server.spooler_pids()
                }
            )
            row["spooler_rss_kib"] = [sum(v or 0 for v in pids[:1]) for pids in memory[-1].values()]
            rows.append(row)
        # After the batches: the probe's own deleted files would slow the next
        # 30 s of spool files on ext4 without a journal (bench/README.md).
        spool = common.spool_line(server, "   ")
    finally:
        env.stop_server(server)
    rates = [r["runs_per_s_first_claim_to_last_report"] for r in rows]
    by_role = {
        k: statistics.median(r["cpu_ms_per_run_by_role"][k] for r in rows)
        for k in rows[0]["cpu_ms_per_run_by_role"]
    }
    cpu = [r["cpu_ms_per_run"] for r in rows]
    first, last = memory[0], memory[-1]
    growth = {
        pid: sum(v or 0 for v in last.get(pid, [])) - sum(v or 0 for v in first.get(pid, [])) for pid in first
    }
    runs_between = len(tasks) * (batches - 1)
    return {
        "spoolers": spoolers,
        "spool": spool,
        "batches": rows,
        "median_runs_per_s": statistics.median(rates),
        "median_cpu_ms_per_run": statistics.median(cpu),
        "median_cpu_ms_per_run_by_role": by_role,
        "median_children_minor_faults_per_run": statistics.median(
            r["children_minor_faults_per_run"] for r in rows
        ),
        "median_floor_fork_cpu_ms": statistics.median(r["floor_fork_cpu_ms"] for r in rows),
        "cpu_bound_runs_per_s": (os.cpu_count() or 1) * 1000.0 / statistics.median(cpu),
        "floor_bare_spool_per_s": floor_rate,
        "exactly_once": all(r["ran_once"] == len(tasks) for r in rows),
        "reports_complete": all(r["unfinished_reports"] == 0 and r["without_report"] == 0 for r in rows),
        "rss_kib_first": first,
        "rss_kib_last": last,
        "rss_growth_kib_per_1000_runs": {
            pid: (kib * 1000.0 / runs_between if runs_between else None) for pid, kib in growth.items()
        },
        "runs_measured_for_memory": runs_between,
    }


def main(argv=None) -> dict:
    options = common.parser(__doc__)
    options.add_argument("--spoolers", default="2", help="comma-separated spooler counts (default 2)")
    options.add_argument("--batches", type=int, help="batches per spooler count")
    options.add_argument("--tasks", type=int, help="tasks per batch")
    options.add_argument(
        "--runs-per-child",
        type=int,
        default=1,
        help="TASKMANAGER_RUNS_PER_CHILD of the server (default 1, the shipped fresh child per run)",
    )
    common.add_spool_dir_option(options)
    args = options.parse_args(argv)
    if args.runs_per_child != 1:
        os.environ["TM_TEST_SETTINGS"] = json.dumps({"TASKMANAGER_RUNS_PER_CHILD": args.runs_per_child})
    counts = dict(QUICK if args.quick else FULL)
    counts.update({k: v for k, v in (("batches", args.batches), ("tasks", args.tasks)) if v})
    started = time.monotonic()
    results = common.new_results(
        args, "throughput", frequency=True, counts=counts, runs_per_child=args.runs_per_child
    )
    print(
        "throughput benchmark: %s, runs per child %d, %d CPUs"
        % (common.settings_line(results), args.runs_per_child, os.cpu_count() or 0)
    )
    env = common.BenchEnv(args.db, keep=args.keep)
    try:
        tasks = new_tasks(PREFIX, counts["tasks"], "tm_noop")
        series = [
            bench_series(env, tasks, int(n), counts["batches"], args.spool_dir)
            for n in args.spoolers.split(",")
            if n.strip()
        ]
    finally:
        env.close()
    rows = []
    for s in series:
        two = s["spoolers"] == 2
        worst_growth = max(
            (v for v in s["rss_growth_kib_per_1000_runs"].values() if v is not None), default=None
        )
        rows.append(
            [
                s["spoolers"],
                s["median_runs_per_s"],
                verdict(s["median_runs_per_s"], TARGETS["runs_per_second_2_spoolers"], False) if two else "",
                s["median_cpu_ms_per_run"],
                verdict(s["median_cpu_ms_per_run"], TARGETS["cpu_ms_per_run"]),
                s["cpu_bound_runs_per_s"],
                s["floor_bare_spool_per_s"],
                "yes" if s["exactly_once"] else "NO",
                "yes" if s["reports_complete"] else "NO",
                worst_growth,
                verdict(worst_growth, TARGETS["memory_growth_kib_per_1000_runs"]),
            ]
        )
    print_table(
        "Throughput: %d batches of %d no-op tasks started by one admin action (median of the batches; "
        "targets: >= %g runs/s with 2 spoolers, <= %g ms CPU per run, memory flat)"
        % (
            counts["batches"],
            counts["tasks"],
            TARGETS["runs_per_second_2_spoolers"],
            TARGETS["cpu_ms_per_run"],
        ),
        [
            "spoolers",
            "runs/s (claims)",
            "",
            "CPU ms/run (all)",
            "",
            "CPU-bound runs/s",
            "floor: bare spool/s",
            "exactly once",
            "reports complete",
            "RSS KiB/1000 runs",
            "",
        ],
        rows,
    )
    for s in series:
        print_table(
            "   %d spooler(s), each batch" % s["spoolers"],
            [
                "batch",
                "runs/s (claims)",
                "runs/s (POST->last)",
                "action POST s",
                "CPU ms/run",
                "floor ms",
                "'locked' in log",
                "spoolers' RSS KiB after",
            ],
            [
                [
                    i + 1,
                    r["runs_per_s_first_claim_to_last_report"],
                    r["runs_per_s_from_post"],
                    r["action_post_s"],
                    r["cpu_ms_per_run"],
                    r["floor_fork_cpu_ms"],
                    r["database_locked_in_log"],
                    " ".join(str(k) for k in r["spooler_rss_kib"]),
                ]
                for i, r in enumerate(s["batches"])
            ],
        )
        print(
            "   resident memory (KiB) per spooler [and processes under it], after the first and the last batch:"
            " %s -> %s" % (s["rss_kib_first"], s["rss_kib_last"])
        )
    print_table(
        "CPU ms per run by process (median of the batches; the rest: master, web workers),"
        " the minor page faults of the runs' children, and the floor: CPU ms of fork() + exit of the bench"
        " process (a Django process of the same project), just before each batch: how fast the machine is now",
        [
            "spoolers",
            "spooler",
            "fork server (own)",
            "runs' children",
            "the rest",
            "all",
            "children's faults/run",
            "floor: fork+exit",
        ],
        [
            [
                s["spoolers"],
                s["median_cpu_ms_per_run_by_role"]["spooler"],
                s["median_cpu_ms_per_run_by_role"]["fork_server"],
                s["median_cpu_ms_per_run_by_role"]["children"],
                s["median_cpu_ms_per_run"] - sum(s["median_cpu_ms_per_run_by_role"].values()),
                s["median_cpu_ms_per_run"],
                s["median_children_minor_faults_per_run"],
                s["median_floor_fork_cpu_ms"],
            ]
            for s in series
        ],
    )
    results["series"] = series
    results["targets"] = TARGETS
    results["summary"] = {
        "runs_per_s_%d_spoolers" % s["spoolers"]: s["median_runs_per_s"] for s in series
    } | {"cpu_ms_per_run_%d_spoolers" % s["spoolers"]: s["median_cpu_ms_per_run"] for s in series}
    return common.finish(results, started)


if __name__ == "__main__":
    main()

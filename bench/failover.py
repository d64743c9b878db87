"""Benchmark several nodes on one database (issue 15): web-only Start latency and failover.

Usage::

    python bench/failover.py [--quick] [--db sqlite|postgresql] [--keep] [--repeat N]

Nodes are uWSGI instances on the bench database, each with a host name of its
own (``TM_TEST_HOSTNAME``) and its own spool directory; the take-over pass
runs every second (``TASKMANAGER_RECOVERY_SECONDS`` 1), with a grace of 2 s.
Measured:

* **web-only Start**: Start POSTed on a web-only node (no spooler, no shared
  directory) -> the run's report row created by the spooler node's claim.
  Expected: up to one pass (1 s) plus a spool scan; target median <= 1 s.
* **failover**: repeating tasks started through node A, due a few seconds
  later; A is killed (SIGKILL of its process group) at once; per task, the
  slot's due time -> its run's claim on node B (expected: grace + one pass),
  and the kill -> the last run. Then A comes back with its spool directory:
  runs per slot are counted (lost: 0 runs, doubled: more than 1).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.common import print_table, summary  # noqa: E402

PASS_SECONDS = 1
GRACE = 2
NODE_SETTINGS = {
    "TASKMANAGER_RECOVERY_SECONDS": PASS_SECONDS,
    "TASKMANAGER_TAKEOVER_GRACE": GRACE,
    "TASKMANAGER_NODE_TIMEOUT": 3,
}


def node(env, host: str, **options):
    """Start a uWSGI standing for machine ``host`` (tests.settings with NODE_SETTINGS)."""
    server_env = {
        **env.server_env(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TM_TEST_SETTINGS": json.dumps(NODE_SETTINGS),
        "TM_TEST_HOSTNAME": host,
    }
    server = common.UwsgiServer(env=server_env, **options)
    env.servers.append(server)
    server.start()
    return server


def web_only_latency(env, repeat: int) -> dict:
    from taskmanager.models import Command, Report, Task

    node(env, "spooler-b.invalid")
    web = node(env, "web-only.invalid", spooler_processes=0)
    client = env.admin(web)
    ok = Command.objects.get(name="tm_ok")
    samples = []
    for i in range(repeat):
        task = Task.objects.create(name="web-start-%d" % i, command=ok)
        # A click at any moment of the spooler node's pass cycle.
        time.sleep(random.uniform(0, PASS_SECONDS))
        clicked = time.time()
        client.post("/admin/taskmanager/task/%d/start/" % task.pk, follow=False)
        report = common.wait_for(
            lambda task=task: Report.objects.filter(task=task).first(), 30, "the run of %s" % task.name
        )
        samples.append(report.invocation_datetime.timestamp() - clicked)
    return summary(samples)


def failover(env, tasks_count: int) -> dict:
    from taskmanager import dbclock
    from taskmanager.models import Command, Report, Task

    a = node(env, "node-a.invalid")
    node(env, "node-b.invalid")
    client = env.admin(a)
    ok = Command.objects.get(name="tm_ok")
    due = (dbclock.now() + timedelta(seconds=5)).replace(microsecond=0)
    tasks = [
        Task.objects.create(
            name="failover-%d" % i, command=ok, scheduling=due, repetition_period="minute", repetition_rate=1
        )
        for i in range(tasks_count)
    ]
    for task in tasks:
        client.post("/admin/taskmanager/task/%d/start/" % task.pk, follow=False)
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait()
    a.proc = None
    killed = time.time()
    common.wait_for(
        lambda: Report.objects.filter(task__in=tasks, finished_datetime__isnull=False).count() >= len(tasks),
        60,
        "a run of every task",
        interval=0.02,
    )
    last = time.time()
    reports = list(Report.objects.filter(task__in=tasks))
    late = [r.invocation_datetime.timestamp() - due.timestamp() for r in reports]
    hosts = sorted({r.host for r in reports})
    # A comes back with its spool directory: its files carry superseded tokens.
    back = node(env, "node-a.invalid", spool_dir=a.spool_dir, http=False)
    common.wait_for(
        lambda: not [p for p in back.spool_dir.glob("uwsgi_spoolfile_*") if p.stat().st_mtime <= time.time()],
        30,
        "node A's stale files consumed",
    )
    runs = [Report.objects.filter(task=task).count() for task in tasks]
    return {
        "tasks": tasks_count,
        "slot_to_run_s": summary(late),
        "kill_to_last_run_s": last - killed,
        "slot_due_after_kill_s": due.timestamp() - killed,
        "run_on_hosts": hosts,
        "slots_lost": sum(1 for n in runs if n == 0),
        "slots_doubled": sum(1 for n in runs if n > 1),
    }


def main(argv=None) -> dict:
    cli = common.parser(__doc__)
    cli.add_argument("--repeat", type=int, default=None, help="web-only Starts (default 20, quick 5)")
    args = cli.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 20)
    print(
        "several nodes: db=%s%s, pass %s s, grace %s s, load %s"
        % (args.db, " (quick)" if args.quick else "", PASS_SECONDS, GRACE, os.getloadavg()[0])
    )
    results: dict = {"bench": "failover", "db": args.db, "quick": args.quick}
    env = common.BenchEnv(args.db, keep=args.keep)
    try:
        results["web_only_start_s"] = web_only_latency(env, repeat)
        for server in list(env.servers):
            env.stop_server(server)
        results["failover"] = failover(env, 3 if args.quick else 10)
    finally:
        env.close()
    web, fo = results["web_only_start_s"], results["failover"]
    print_table(
        "Web-only Start -> claim on a spooler node (seconds; target median <= 1 s with a 1 s pass)",
        ["n", "median", "p95", "max"],
        [[web["n"], web["median"], web["p95"], web["max"]]],
    )
    slot = fo["slot_to_run_s"]
    print_table(
        "Failover: node A killed, %d repeating tasks due %.1f s later (expected: grace %s s + one pass)"
        % (fo["tasks"], fo["slot_due_after_kill_s"], GRACE),
        ["slot -> run median", "slot -> run max", "kill -> last run", "ran on", "lost", "doubled"],
        [
            [
                slot["median"],
                slot["max"],
                fo["kill_to_last_run_s"],
                ",".join(fo["run_on_hosts"]),
                fo["slots_lost"],
                fo["slots_doubled"],
            ]
        ],
    )
    common.emit(common.rounded(results))
    return results


if __name__ == "__main__":
    main()

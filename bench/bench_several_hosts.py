"""Benchmark several machines on one database (issue 15): failover, slots, web-only Start, CPU per node count.

Usage::

    python bench/bench_several_hosts.py [--quick] [--db sqlite|postgresql] [--keep]

Each machine is a uWSGI node in a UTS + PID namespace of its own
(``tests/support/hosts.py``: another host name, pids the others cannot see,
killed whole by SIGKILL to the namespace's init); all share the bench
database. Second-scale settings (printed): a recovery pass every second, a
heartbeat every half second, a run without one for 5 s is interrupted, a
pending run overdue by 2 s may be taken by another node (the takeover pass).
Measured:

* **death -> run closed elsewhere**: a node dies with a run going on; until
  another node closes it "interrupted". Floor: the heartbeat timeout (plus up
  to one recovery period);
* **death -> pending runs running elsewhere**: one-shot tasks queued on the
  dead node, due one per second from 1 s after its death; for each, its due
  time to its run starting on another node. Floor: the takeover grace (plus
  up to one recovery period). Only with the takeover pass; else "n/a";
* **slots lost and doubled**: those tasks, once the dead node is back and its
  spool drained: tasks with no run (lost) and with more than one (doubled);
  the floor is 0 for both;
* **Start through a web-only node**: a node without a spooler; from the Start
  POST to the run's first line, median; the floor is the same Start through
  a spooler node (woken at once). Only with the takeover pass; else "n/a";
* **CPU per run, 1 node vs 3**: runs of a command that does nothing, started
  round-robin through the live nodes; the CPU time (user + system) of every
  process of every node (from /proc, children included) over the batch,
  divided by the runs. The difference is the cost of coordination (idle
  nodes' recovery passes and heartbeats included).

Figures are printed beside their floor; nothing is asserted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.common import print_table  # noqa: E402
from tests.support.hosts import Host, namespaces_unavailable  # noqa: E402
from tests.support.spool import spool_paths  # noqa: E402

SETTINGS = {
    "TASKMANAGER_RECOVERY_SECONDS": 1,
    "TASKMANAGER_HEARTBEAT_SECONDS": 0.5,
    "TASKMANAGER_HEARTBEAT_TIMEOUT": 5,
    "TASKMANAGER_NODE_TIMEOUT": 5,
    "TASKMANAGER_TAKEOVER_GRACE": 2,
}
NEEDS_TAKEOVER = "n/a (needs the takeover pass, issue 15)"
MESSAGE_RE = re.compile(r'<li class="(?:success|info|warning|error)">(.*?)</li>', re.S)
#: How long a run is waited for on another node before it is taken for "not available".
TAKEOVER_WAIT = 30


def start_host(env, name, **options) -> Host:
    host = Host(name, env={**env.server_env(), "TM_TEST_SETTINGS": json.dumps(SETTINGS)}, **options)
    env.servers.append(host)
    host.start()
    return host


def report_of(task_id, **filters):
    from taskmanager.models import Report

    return Report.objects.filter(task_id=task_id, **filters).order_by("pk").first()


def make_task(name, command, arguments="", **fields):
    from taskmanager.models import Command, Task

    return Task.objects.create(
        name=name, command=Command.objects.get(name=command), arguments=arguments, **fields
    )


def start(client, task):
    return client.post("/admin/taskmanager/task/%d/start/" % task.pk).text


def failover(env, hosts, clients, pending_count) -> dict:
    """Kill hosts[0] with a run going on and ``pending_count`` one-shot runs queued on it."""
    from taskmanager import dbclock
    from taskmanager.models import Report

    dead, others = hosts[0], hosts[1:]
    running = make_task("failover-running", "tm_sleep", "--seconds 600, --tick 0.2")
    start(clients[0], running)
    common.wait_for(lambda: report_of(running.pk, lines__gte=1), 30, "the run on the doomed node")
    base = dbclock.now().replace(microsecond=0) + timedelta(seconds=4)
    pending = [
        make_task("failover-%d" % i, "tm_noop", scheduling=base + timedelta(seconds=i))
        for i in range(pending_count)
    ]
    for task in pending:
        start(clients[0], task)
    common.wait_for(lambda: dbclock.now() >= base - timedelta(seconds=1), 30, "1 s before the first due time")
    died = dbclock.now()
    dead.kill()

    try:
        closed = common.wait_for(
            lambda: report_of(running.pk, finished_datetime__isnull=False),
            60,
            "the run closed elsewhere",
            0.05,
        )
    except TimeoutError:
        closed = None
    other_names = [h.name for h in others]
    deadline = time.monotonic() + TAKEOVER_WAIT + pending_count
    while time.monotonic() < deadline:
        if all(report_of(t.pk, host__in=other_names) for t in pending):
            break
        time.sleep(0.2)
    taken = {t.pk: report_of(t.pk, host__in=other_names) for t in pending}
    delays = [(r.invocation_datetime - t.scheduling).total_seconds() for t in pending if (r := taken[t.pk])]

    dead.restart()
    # Its spool drains: every pending task has run, on it or elsewhere, and its files are consumed.
    common.wait_for(
        lambda: all(report_of(t.pk, finished_datetime__isnull=False) for t in pending),
        60,
        "every pending run",
    )
    common.wait_for(lambda: not spool_paths(dead.spool_dir), 30, "the back node's spool drained")
    runs = [Report.objects.filter(task=t).count() for t in pending]
    return {
        "death_to_closed_s": (closed.finished_datetime - died).total_seconds()
        if closed
        else "not closed in 60 s",
        "closed_end_reason": closed.end_reason if closed else None,
        "taken_elsewhere": len(delays),
        "pending": pending_count,
        "due_to_running_elsewhere_s": common.summary(delays) if delays else None,
        "slots_lost": sum(1 for n in runs if n == 0),
        "slots_doubled": sum(1 for n in runs if n > 1),
    }


def web_only_start(client, web_client, repeat) -> dict:
    """Start latency to the first line: through a spooler node (the floor), then through a web-only node."""
    task = make_task("web-only-start", "tm_stamp")

    why = []
    attempts = []

    def once(via):
        from taskmanager.models import Report, Task

        attempts.append(via)
        # The previous run's end releases the task just after its report is saved.
        common.wait_for(lambda: Task.objects.filter(pk=task.pk, status="IDLE").exists(), 30, "the task idle")
        # By pk, not by count: retention keeps TASKMANAGER_REPORTS_KEPT reports per task.
        last = Report.objects.filter(task=task).order_by("-pk").values_list("pk", flat=True).first() or 0
        sent = time.time()
        answer = start(via, task)
        if "was started" not in answer and "is queued" not in answer:
            why.append("Start answered: %s" % (MESSAGE_RE.findall(answer) or ["?"])[0])
            return None
        try:
            report = common.wait_for(
                lambda: Report.objects.filter(
                    task=task, pk__gt=last, finished_datetime__isnull=False
                ).first(),
                TAKEOVER_WAIT,
                "the run",
                0.01,
            )
        except TimeoutError:
            row = Task.objects.filter(pk=task.pk).values("status", "spooler_node", "run_now_token").first()
            why.append(
                "no run within %d s; Start %d of the %s answered %r, the task is %s on node %r"
                % (
                    TAKEOVER_WAIT,
                    sum(1 for a in attempts if a is via),
                    "web-only node" if via is web_client else "spooler node",
                    (MESSAGE_RE.findall(answer) or ["?"])[0][:80],
                    row["status"],
                    row["spooler_node"],
                )
            )
            return None
        first = report.log_lines.order_by("seq").first()
        try:
            return float(first.text) - sent
        except (AttributeError, ValueError):
            return None

    floor = [once(client) for _ in range(repeat)]
    first = once(web_client)
    if first is None:
        return {"floor_s": common.summary(f for f in floor if f is not None), "web_only_s": None, "why": why}
    web = [first, *(once(web_client) for _ in range(repeat - 1))]
    if why:
        print("web-only Start: %d of %d without a figure: %s" % (len(why), repeat, "; ".join(why)))
    return {
        "floor_s": common.summary(f for f in floor if f is not None),
        "web_only_s": common.summary(w for w in web if w is not None),
    }


def cpu_per_run(hosts, clients, runs) -> dict:
    """Run ``runs`` tm_noop runs round-robin through ``clients``; CPU of all the hosts' processes per run."""
    from taskmanager.models import Report

    tasks = [make_task("cpu-%d-%d" % (len(hosts), i), "tm_noop") for i in range(runs)]
    pids = [pid for host in hosts for pid in host.pids()]
    cpu_before, wall_before = common.cpu_seconds(pids), time.monotonic()
    for i, task in enumerate(tasks):
        start(clients[i % len(clients)], task)
        common.wait_for(
            lambda task=task: Report.objects.filter(task=task, finished_datetime__isnull=False).exists(),
            60,
            "run %d" % i,
            0.01,
        )
    cpu = common.cpu_seconds(pids) - cpu_before
    return {
        "nodes": len(hosts),
        "runs": runs,
        "cpu_per_run_ms": 1000 * cpu / runs,
        "wall_s": time.monotonic() - wall_before,
    }


def fmt(value, unit="s"):
    return "%.2f %s" % (value, unit) if isinstance(value, float | int) else str(value)


def main(argv=None) -> dict:
    cli = common.parser(__doc__)
    args = cli.parse_args(argv)
    started = time.monotonic()
    results = common.new_results(args, "several_hosts", settings=SETTINGS)
    reason = namespaces_unavailable()
    if reason:
        na = "n/a (no namespaces: %s)" % reason
        results["summary"] = {
            k: na
            for k in (
                "death_to_closed_s",
                "failover_s",
                "slots_lost",
                "slots_doubled",
                "web_only_start_s",
                "cpu_per_run_1_node_ms",
                "cpu_per_run_3_nodes_ms",
            )
        }
        print("several hosts: %s" % na)
        return common.finish(results, started)
    pending, repeat, runs = (3, 3, 20) if args.quick else (10, 10, 100)
    print("several hosts: db=%s%s, settings %s" % (args.db, " (quick)" if args.quick else "", SETTINGS))
    env = common.BenchEnv(args.db, keep=args.keep)
    try:
        hosts = [start_host(env, "bench-host-%s" % n) for n in "abc"]
        clients = [env.admin(h) for h in hosts]
        # CPU with 1 node, then 3 (the other two idle for the first batch do not count: they are down).
        for host in hosts[1:]:
            host.kill()
        results["cpu_1_node"] = cpu_per_run(hosts[:1], clients[:1], runs)
        for host in hosts[1:]:
            host.restart()
        clients = [env.admin(h) for h in hosts]
        results["cpu_3_nodes"] = cpu_per_run(hosts, clients, runs)

        web = start_host(env, "bench-web-only", spooler_processes=0)
        results["start"] = web_only_start(clients[1], env.admin(web), repeat)
        env.stop_server(web)

        results["failover"] = failover(env, hosts, clients, pending)
    finally:
        env.close()

    f, s = results["failover"], results["start"]
    heartbeat_floor = SETTINGS["TASKMANAGER_HEARTBEAT_TIMEOUT"]
    grace = SETTINGS["TASKMANAGER_TAKEOVER_GRACE"]
    taken = f["due_to_running_elsewhere_s"]
    failover_median = taken["median"] if taken else NEEDS_TAKEOVER
    if s["web_only_s"]:
        web_median = s["web_only_s"]["median"]
    elif s["why"] and s["why"][0].startswith("Start answered"):
        web_median = "n/a (%s: needs the takeover pass, issue 15)" % s["why"][0]
    else:
        web_median = "n/a (%s)" % (s["why"] or ["?"])[0]
    one, three = results["cpu_1_node"]["cpu_per_run_ms"], results["cpu_3_nodes"]["cpu_per_run_ms"]
    rows = [
        [
            "death -> running run closed elsewhere",
            fmt(f["death_to_closed_s"]),
            "%d s (heartbeat timeout) + <= 1 s" % heartbeat_floor,
        ],
        [
            "due -> pending run running elsewhere (median of %d)" % f["pending"],
            fmt(failover_median),
            "%d s (grace) + <= 1 s" % grace,
        ],
        ["pending runs taken elsewhere", "%d of %d" % (f["taken_elsewhere"], f["pending"]), "all"],
        ["slots lost", f["slots_lost"], 0],
        ["slots doubled", f["slots_doubled"], 0],
        [
            "Start through a web-only node -> first line (median)",
            fmt(web_median),
            "%s (through a spooler node)" % fmt(s["floor_s"]["median"]),
        ],
        ["CPU per run, 1 node", fmt(one, "ms"), "-"],
        ["CPU per run, 3 nodes", fmt(three, "ms"), "%s (1 node)" % fmt(one, "ms")],
    ]
    print_table("Several hosts (issue 15)", ["figure", "value", "floor"], rows)
    results["summary"] = {
        "death_to_closed_s": f["death_to_closed_s"],
        "failover_s": failover_median,
        "slots_lost": f["slots_lost"],
        "slots_doubled": f["slots_doubled"],
        "web_only_start_s": web_median,
        "cpu_per_run_1_node_ms": one,
        "cpu_per_run_3_nodes_ms": three,
    }
    return common.finish(results, started)


if __name__ == "__main__":
    main()

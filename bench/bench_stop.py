"""Benchmark Stop: from the click to the command's process being gone.

Usage::

    python bench/bench_stop.py [--quick] [--db sqlite|postgresql] [--keep] [--repeat N]

With the shipped settings (``bench.settings``: ``TASKMANAGER_STOP_POLL_SECONDS``
0.5, ``TASKMANAGER_STOP_GRACE_SECONDS`` 3), a command that sleeps in short
ticks is started, and once its process runs, Stop is POSTed; the process is
then watched in ``/proc`` every millisecond. Measured per stop:

* **gone**: Stop POST sent -> the command's process no longer runs (gone or a
  zombie about to be reaped);
* **reported**: Stop POST sent -> the report is saved (``finished_datetime``).

Cases: a command that exits on SIGTERM and one that ignores it (it gets
SIGKILL after the grace period), each stopped on the node that runs it and
from a web-only node (``--spooler-external`` on the same spool directory; the
stop request crosses through the database). Expected: up to one poll interval
(plus the SIGTERM) for the first, that plus the grace period for the second.
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.common import print_table, summary  # noqa: E402
from tests.support import procs  # noqa: E402


def stop_once(client, task, poll_seconds: float, timeout: float = 60) -> dict:
    """Start ``task``, wait for its process, press Stop; return the measured seconds."""
    from taskmanager.models import Report

    client.post("/admin/taskmanager/task/%d/start/" % task.pk, follow=False)
    report = common.wait_for(
        lambda: Report.objects.filter(
            task=task, finished_datetime__isnull=True, pid__isnull=False, lines__gte=1
        ).first(),
        timeout,
        "the run of %s" % task.name,
        interval=0.01,
    )
    pid = report.pid
    # A person clicks at any moment of the supervisor's poll cycle; without
    # this the click would follow the flush that revealed the run, in phase.
    time.sleep(random.uniform(0, poll_seconds))
    clicked = time.time()
    client.post("/admin/taskmanager/task/%d/stop/" % task.pk, follow=False)
    common.wait_for(lambda: procs.gone(pid), timeout, "process %d to end" % pid, interval=0.001)
    gone = time.time()
    report = common.wait_for(
        lambda: Report.objects.filter(pk=report.pk, finished_datetime__isnull=False).first(),
        timeout,
        "the report of %s" % task.name,
        interval=0.005,
    )
    if report.end_reason != "stopped by user bench":
        raise RuntimeError("unexpected end of the run: %r" % report.end_reason)
    return {"gone_s": gone - clicked, "reported_s": report.finished_datetime.timestamp() - clicked}


def measure(client, task, repeat: int, poll_seconds: float) -> dict:
    samples = [stop_once(client, task, poll_seconds) for _ in range(repeat)]
    return {key: summary(s[key] for s in samples) for key in ("gone_s", "reported_s")}


def main(argv=None) -> dict:
    cli = common.parser(__doc__)
    cli.add_argument("--repeat", type=int, default=None, help="stops per case (default 10, quick 3)")
    args = cli.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 10)
    env = common.BenchEnv(args.db, keep=args.keep)
    from taskmanager.conf import app_settings
    from taskmanager.models import Command, Task

    poll, grace = app_settings.STOP_POLL_SECONDS, app_settings.STOP_GRACE_SECONDS
    print(
        "stop latency: db=%s%s, %d stops per case, stop poll %s s, grace %s s, load %s"
        % (args.db, " (quick)" if args.quick else "", repeat, poll, grace, os.getloadavg()[0])
    )
    sleep = Command.objects.get(name="tm_sleep")
    tasks = {
        "normal": Task.objects.create(
            name="stop-normal", command=sleep, arguments="--seconds 600, --tick 0.2"
        ),
        "ignores SIGTERM": Task.objects.create(
            name="stop-stubborn", command=sleep, arguments="--seconds 600, --tick 0.2, --ignore-term"
        ),
    }
    results: dict = {
        "bench": "stop",
        "db": args.db,
        "quick": args.quick,
        "repeat": repeat,
        "stop_poll_s": poll,
        "grace_s": grace,
    }
    rows = []
    try:
        server = env.start_server(2)
        client = env.admin(server)
        for case, task in tasks.items():
            results["same node, " + case] = measure(client, task, repeat, poll)
        env.stop_server(server)

        spooler_node = common.UwsgiServer(env=env.server_env(), http=False)
        env.servers.append(spooler_node)
        spooler_node.start()
        web = common.UwsgiServer(
            env=env.server_env(),
            spooler_processes=0,
            extra_args=["--spooler-external", str(spooler_node.spool_dir)],
        )
        env.servers.append(web)
        web.start()
        client = env.admin(web)
        for case, task in tasks.items():
            results["web-only node, " + case] = measure(client, task, repeat, poll)
    finally:
        env.close()
    for key, value in results.items():
        if isinstance(value, dict) and "gone_s" in value:
            for what in ("gone_s", "reported_s"):
                s = value[what]
                rows.append([key, what.removesuffix("_s"), s["n"], s["median"], s["p95"], s["max"]])
    print_table(
        "Stop latency (seconds from the Stop POST; expected: <= %s s poll, + %s s grace if SIGTERM is ignored)"
        % (poll, grace),
        ["case", "until", "n", "median", "p95", "max"],
        rows,
    )
    results["summary"] = {
        "stop_normal_gone_max_s": results["same node, normal"]["gone_s"]["max"],
        "stop_ignoring_gone_max_s": results["same node, ignores SIGTERM"]["gone_s"]["max"],
        "stop_remote_normal_gone_max_s": results["web-only node, normal"]["gone_s"]["max"],
        "stop_remote_ignoring_gone_max_s": results["web-only node, ignores SIGTERM"]["gone_s"]["max"],
    }
    common.emit(results)
    return results


if __name__ == "__main__":
    main()

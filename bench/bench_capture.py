"""Benchmark the log capture: a command printing N short lines, captured vs a plain file.

Usage::

    python bench/bench_capture.py [--quick] [--db sqlite|postgresql] [--lines 1000000] [--via stdout,logging]

For each way of writing (the command's ``self.stdout`` and ``logging``), it
prints:

* the floor: the same command, run in a forked process, writing the same lines
  to a plain file (``self.stdout`` given a file; for logging, a FileHandler
  replacing the console handler);
* the captured run: the same command run through the runner's
  ``Supervisor`` exactly as a spooler runs it (fork, pipes, capture, batched
  inserts, final report), with the shipped settings, in this process;
* lines per second, the ratio to the floor, and the peak RSS growth of the
  supervisor (this process) and of the child (measured by the command itself
  from /proc/self/status, after resetting its peak).

Numbers only: nothing here asserts.
"""

import json
import logging
import os
import re
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _benchdb  # noqa: E402

from bench import common  # noqa: E402  (importable once _benchdb put the repository on the path)


def floor_seconds(lines: int, via: str) -> float:
    """Run tm_spam in a forked child writing to a plain file; return the wall time."""
    from django.core.management import call_command
    from django.db import connections

    path = tempfile.mktemp(prefix="tm-bench-", suffix=".log")
    connections.close_all()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with open(path, "w") as out:
                if via == "logging":
                    root = logging.getLogger()
                    for handler in list(root.handlers):
                        root.removeHandler(handler)
                    root.addHandler(logging.FileHandler(path + ".logging"))
                call_command("tm_spam", "--lines", str(lines), "--via", via, stdout=out)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the floor run failed")
    for name in (path, path + ".logging"):
        if os.path.exists(name):
            os.unlink(name)
    return elapsed


def captured_run(lines: int, via: str):
    """Run tm_spam through the Supervisor; return (seconds, report, supervisor growth KiB)."""
    from taskmanager import runner
    from taskmanager.models import Command, Task, new_token

    command = Command.objects.get(name="tm_spam")
    token = new_token()
    task = Task.objects.create(
        name="bench %s %s %s" % (via, lines, token[:6]),
        command=command,
        arguments="--lines %d, --via %s, --memory" % (lines, via),
        status=Task.Status.SPOOLED,
        run_token=token,
    )
    _benchdb.reset_peak()
    rss_before = _benchdb.memory_kib(field="VmRSS")
    started = time.perf_counter()
    cpu = time.process_time()
    claimed = runner.claim(task.pk, token, "start")
    task, report = claimed
    runner.Supervisor(task, report).run()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    growth = _benchdb.memory_kib(field="VmHWM") - rss_before
    report.refresh_from_db()
    return elapsed, report, growth, cpu, children.ru_utime + children.ru_stime


def main(argv=None):
    parser = common.log_parser(__doc__)
    parser.add_argument("--via", default="stdout,logging")
    args = common.parse_log_args(parser, argv)
    results = {"bench": "capture", "db": args.db, "quick": args.quick, "lines": args.lines, "via": {}}
    name = _benchdb.setup(args.db)
    try:
        from taskmanager.conf import app_settings
        from taskmanager.management.commands.collect_commands import collect

        collect(exclude_core=True)
        print(
            "capture benchmark: %d lines, db=%s, LOG_BATCH_LINES=%d, LOG_BATCH_BYTES=%d"
            % (args.lines, args.db, app_settings.LOG_BATCH_LINES, app_settings.LOG_BATCH_BYTES)
        )
        for via in args.via.split(","):
            floor = floor_seconds(args.lines, via)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            elapsed, report, growth, cpu, child_cpu = captured_run(args.lines, via)
            child_cpu -= before.ru_utime + before.ru_stime
            last = report.log_lines.order_by("-seq").values_list("text", flat=True).first() or ""
            match = re.search(r"rss_start_kib=(\d+) hwm_kib=(\d+)", last)
            child = int(match.group(2)) - int(match.group(1)) if match else -1
            print(
                "%-8s floor (plain file) %6.2f s %9.0f lines/s | captured %6.2f s %9.0f lines/s "
                "ratio %.2fx | stored %d lines, result %s | peak RSS growth: supervisor %.1f MB, "
                "child %.1f MB | CPU s: supervisor %.2f, child %.2f"
                % (
                    via,
                    floor,
                    args.lines / floor,
                    elapsed,
                    args.lines / elapsed,
                    elapsed / floor,
                    report.lines,
                    report.result,
                    growth / 1024,
                    child / 1024,
                    cpu,
                    child_cpu,
                )
            )
            sys.stdout.flush()
            results["via"][via] = {
                "floor_s": floor,
                "captured_s": elapsed,
                "lines_per_s": args.lines / elapsed,
                "ratio_to_floor": elapsed / floor,
                "stored_lines": report.lines,
                "supervisor_rss_growth_mb": growth / 1024,
                "child_rss_growth_mb": child / 1024,
                # CPU per line: steadier than wall time on a shared machine.
                "supervisor_cpu_us_per_line": cpu / args.lines * 1e6,
                "child_cpu_us_per_line": child_cpu / args.lines * 1e6,
            }
    finally:
        if not args.keep:
            _benchdb.teardown(args.db, name)
    # The one JSON line bench/run.py collects (see bench/common.py).
    results["summary"] = {
        "%s_%s" % (via, key): round(row[key], 2)
        for via, row in results["via"].items()
        for key in ("lines_per_s", "ratio_to_floor")
    }
    print(json.dumps(results, sort_keys=True))
    return results


if __name__ == "__main__":
    main()

"""Run every benchmark script (``bench/bench_*.py``) and print a combined summary.

Usage::

    python bench/run.py                 # all scripts, full counts (a few minutes each at most)
    python bench/run.py --quick         # smaller counts, for a smoke run
    python bench/run.py --db postgresql
    python bench/run.py --only run_path,admin_scale
    python bench/run.py --list

Each script runs in its own process (each sets up Django on a fresh database
of its own) from the repository root. The interface the scripts share (see
``bench/common.py``): ``--quick`` and ``--db`` options, a table on stdout,
and one JSON object on the last line of stdout, optionally with a
``"summary"`` dict of headline figures. A script whose source does not
mention ``--quick`` (or ``--db``) is run without that option, and the summary
says so.

The script output is shown as it comes; at the end come a summary table and
one JSON line holding every script's JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def discover() -> list[Path]:
    """Return the bench scripts, sorted by name."""
    return sorted(BENCH_DIR.glob("bench_*.py"))


def short_name(path: Path) -> str:
    return path.stem.removeprefix("bench_")


def command_for(path: Path, quick: bool, db: str) -> tuple[list[str], list[str]]:
    """Return (argv, notes) to run ``path`` with the options it supports."""
    source = path.read_text(errors="replace")
    argv = [sys.executable, str(path)]
    notes = []
    if quick:
        if "--quick" in source:
            argv.append("--quick")
        else:
            notes.append("no --quick: ran with full counts")
    if "--db" in source:
        argv += ["--db", db]
    elif db != "sqlite":
        notes.append("no --db: ran on its default database")
    return argv, notes


def last_json(lines: list[str]) -> dict | None:
    """Return the last stdout line that parses as a JSON object, or None."""
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def run_script(path: Path, quick: bool, db: str, timeout: float) -> dict:
    """Run one script, echoing its output; return {status, seconds, notes, result, ...}."""
    argv, notes = command_for(path, quick, db)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    print("\n" + "=" * 100)
    print("$ " + " ".join(argv[1:]))
    print("=" * 100)
    sys.stdout.flush()
    started = time.monotonic()
    lines: list[str] = []
    proc = subprocess.Popen(
        argv,
        cwd=str(ROOT),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )

    def echo():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            # The JSON line goes into the combined one; echo everything else.
            if not line.startswith("{"):
                sys.stdout.write(line)
                sys.stdout.flush()

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    timed_out = False
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        # SIGINT first: the script's cleanup stops the uWSGI servers it started.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
    reader.join(timeout=10)
    seconds = time.monotonic() - started
    result = last_json(lines)
    if timed_out:
        status = "timed out after %.0f s" % timeout
    elif code != 0:
        status = "failed (exit %d)" % code
    elif result is None:
        status = "no JSON line"
    else:
        status = "ok"
    return {"status": status, "seconds": round(seconds, 1), "notes": notes, "result": result}


def headline(result: dict | None) -> str:
    """Return the script's headline figures as ``key=value`` text."""
    if not result:
        return ""
    figures = result.get("summary")
    if not isinstance(figures, dict):
        figures = {
            k: v for k, v in result.items() if isinstance(v, int | float | str) and k not in ("bench", "db")
        }
    return ", ".join("%s=%s" % (k, _fmt(v)) for k, v in figures.items())


def _fmt(value) -> str:
    if isinstance(value, float):
        return "%.2f" % value
    return str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script that has it")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--only", default="", help="comma-separated script names (e.g. run_path,stop)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per script")
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    parser.add_argument(
        "--json-out", default="", help="also write every script's full JSON result to this file"
    )
    args = parser.parse_args(argv)

    scripts = discover()
    if args.only:
        wanted = {name.strip().removeprefix("bench_").removesuffix(".py") for name in args.only.split(",")}
        unknown = wanted - {short_name(p) for p in scripts}
        if unknown:
            parser.error("no such bench script: %s" % ", ".join(sorted(unknown)))
        scripts = [p for p in scripts if short_name(p) in wanted]
    if args.list:
        for path in scripts:
            print(short_name(path), path.relative_to(ROOT))
        return 0

    started = time.monotonic()
    load_before = os.getloadavg()
    outcomes = {}
    for path in scripts:
        outcomes[short_name(path)] = run_script(path, args.quick, args.db, args.timeout)

    print("\n" + "=" * 100)
    print(
        "Summary: %d script(s), db=%s%s, %.0f s; load average before %.2f, after %.2f (2-core machine: "
        "other work running at the same time makes every figure noisier)"
        % (
            len(outcomes),
            args.db,
            " (quick)" if args.quick else "",
            time.monotonic() - started,
            load_before[0],
            os.getloadavg()[0],
        )
    )
    print("=" * 100)
    width = max((len(n) for n in outcomes), default=6)
    for name, outcome in outcomes.items():
        print(
            "%-*s  %-22s %7.1f s  %s"
            % (width, name, outcome["status"], outcome["seconds"], headline(outcome["result"]))
        )
        for note in outcome["notes"]:
            print("%-*s  note: %s" % (width, "", note))
    combined = {
        "bench": "all",
        "db": args.db,
        "quick": args.quick,
        "scripts": {
            name: {
                "status": o["status"],
                "seconds": o["seconds"],
                "notes": o["notes"],
                "summary": (o["result"] or {}).get("summary"),
            }
            for name, o in outcomes.items()
        },
    }
    if args.json_out:
        full = {**combined, "scripts": outcomes}
        Path(args.json_out).write_text(json.dumps(full, indent=1, sort_keys=True))
        print("\nevery script's full JSON result: %s" % args.json_out)
    print()
    print(json.dumps(combined, sort_keys=True))
    # A script that ran but printed no JSON line is reported, not counted as a failure.
    failed = [n for n, o in outcomes.items() if o["status"] not in ("ok", "no JSON line")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

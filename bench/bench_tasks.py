"""Benchmark the django.tasks backend (issues 18 and 19), beside django-tasks-db's ``db_worker``.

Usage::

    python bench/bench_tasks.py [--quick] [--db sqlite|postgresql] [--keep]
    python bench/bench_tasks.py --only latency,throughput,db_worker

Django 6.x only (``django.tasks``). Started by a Python without it, as
``make bench`` starts every script with the test virtualenv (Django 5.2),
it runs itself again with the Python of a Django 6.1 virtualenv of its own,
``.venv-bench-tasks`` (made on first use by ``demo/demo_venv.py``, as the
demo's, with ``django-tasks-db``), or of ``TM_BENCH_DJANGO6_PYTHON``; where
the machine has no Python 3.12 or later it says so and measures nothing.

With the shipped settings (``bench.settings``), uWSGI as ``demo/uwsgi.ini``
runs it (2 web workers, N spooler processes), SQLite as the tests configure
it (WAL, IMMEDIATE transactions, 30 s busy timeout):

1. **latency** (``latency``): ``.enqueue()`` in a web worker -> the function
   entered (``stamp()`` returns ``time.time()``; the view takes it just
   before ``enqueue()``), one call at a time, median and p95, with 1 and 2
   spooler processes; beside the command runs' target (Start -> first line,
   10 / 25 ms) and the floor, a bare uWSGI spool function in the same server
   (``uwsgi.spool()`` -> entered);
2. **throughput** (``throughput``): N no-op calls (1,000; 200 with
   ``--quick``) enqueued by one request in one transaction, ``--batches``
   times, 2 spooler processes, a fresh child per run (the shipped
   ``TASKMANAGER_RUNS_PER_CHILD = 1``) and a reused one (100): results per
   second from the first start to the last finish (the rows' own times) and
   from the request sent, CPU per result of the whole uWSGI tree, and every
   row SUCCESSFUL exactly once (one worker id each, and each call entered
   once: ``noop()`` notes its result's id in a file; counted, not assumed);
3. **db_worker** (``db_worker``): django-tasks-db's ``DatabaseBackend`` on
   the same database and settings, 2 ``manage.py db_worker`` processes
   (``--interval 1``, its default; ``--no-startup-delay``): the same N calls
   enqueued in one transaction, results per second from the first start to
   the last finish, CPU per result of the workers, every row SUCCESSFUL
   exactly once (counted the same way);
   and its enqueue -> entered latency (an idle worker polls every interval).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from importlib.util import find_spec

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.bench_run_path import spool_floor  # noqa: E402
from bench.bench_throughput import cpu_by_role, tree_cpu_seconds  # noqa: E402
from bench.bench_throughput import run_batch as command_batch  # noqa: E402
from bench.common import ROOT, print_table, summary, verdict  # noqa: E402

SECTIONS = ["latency", "throughput", "db_worker"]
FULL = {"latency": 50, "tasks": 1000, "batches": 3, "db_latency": 20}
QUICK = {"latency": 10, "tasks": 200, "batches": 1, "db_latency": 5}
#: The command runs' targets (bench_run_path.py, bench_throughput.py): the same here.
TARGETS = {"latency_median_ms": 10.0, "latency_p95_ms": 25.0, "results_per_s_2_spoolers": 250.0}
REUSED_RUNS_PER_CHILD = 100
VENV = ROOT / ".venv-bench-tasks"
#: The command runs' tasks (a no-op command), beside the function calls on the same server.
COMMAND_PREFIX = "bench-tp"
#: demo_venv.py's exit status when the machine has no Python >= 3.12.
NO_DJANGO6 = 3
ENDED = ("SUCCESSFUL", "FAILED")


def rerun_on_django6(argv) -> int:
    """Run this script again with a Django 6.x Python; say why not when there is none."""
    python = os.environ.get("TM_BENCH_DJANGO6_PYTHON")
    if not python:
        done = subprocess.run(
            [sys.executable, str(ROOT / "demo/demo_venv.py"), str(VENV), "--require-django6"]
            + ["--with", "django-tasks-db"],
            stdout=sys.stderr,
        )
        if done.returncode == NO_DJANGO6:
            reason = "no Python >= 3.12 on this machine: django.tasks needs Django 6.x"
            print("django.tasks benchmark skipped: " + reason)
            common.emit({"bench": "tasks", "skipped": reason, "summary": {"skipped": reason}})
            return 0
        if done.returncode:
            raise SystemExit("could not make %s (demo/demo_venv.py exit %d)" % (VENV, done.returncode))
        python = str(VENV / "bin/python")
    print("django.tasks needs Django 6.x: running again with %s" % python, flush=True)
    os.execv(python, [python, os.path.abspath(__file__), *argv])
    return 1  # not reached


def ms(seconds: float) -> float:
    return seconds * 1000.0


def enqueue(client, task: str, count: int = 1, backend: str = "default") -> dict:
    """Enqueue ``count`` calls of ``task`` in a web worker, one transaction; return {"before", "ids"}."""
    data = {"task": task, "count": str(count), "backend": backend}
    resp = client.post("/bench/tasks/enqueue/", data, follow=False, csrf=False)
    if resp.status != 200:
        raise RuntimeError("the enqueue view answered %s: %s" % (resp.status, resp.text[:1000]))
    return json.loads(resp.text)


def ended_row(model, pk, timeout: float = 60.0) -> tuple:
    """Wait until the row ``pk`` of ``model`` has ended; return (status, return_value)."""
    rows = model.objects.filter(pk=pk, status__in=ENDED).values_list("status", "return_value")
    return common.wait_for(lambda: rows.first(), timeout, "task result %s" % pk, interval=0.005)


# -- 1. latency --------------------------------------------------------------------
def bench_latency(env, spoolers: int, runs: int) -> dict:
    from taskmanager.models import DjangoTaskResult

    server = env.start_server(spoolers)
    try:
        client = env.admin(server)
        floor = spool_floor(env, client, runs)[1]
        for _ in range(3):  # the carrier task's first run, imports: not measured
            ended_row(DjangoTaskResult, enqueue(client, "stamp")["ids"][0])
        values, failed = [], 0
        for _ in range(runs):
            answer = enqueue(client, "stamp")
            status, entered = ended_row(DjangoTaskResult, answer["ids"][0])
            if status != "SUCCESSFUL":
                failed += 1
                continue
            values.append(ms(entered - answer["before"]))
            time.sleep(0.05)  # a person's clicks are this far apart at least
    finally:
        env.stop_server(server)
    return {
        "spoolers": spoolers,
        "runs": runs,
        "failed": failed,
        "enqueue_to_entered_ms": summary(values),
        "floor_spool_to_entered_ms": summary(floor),
    }


# -- 2. throughput -----------------------------------------------------------------
def measure_batch(env, model, count: int, enqueue_calls, cpu_seconds) -> dict:
    """Enqueue ``count`` no-op calls (``enqueue_calls(count)`` -> ids), wait for their rows of ``model`` to end.

    Return the rate from the first start to the last finish (the rows' own
    times) and from the enqueue, the CPU per result (``cpu_seconds()``, read
    before and after), and :func:`counted`.
    """
    from django.db.models import Max, Min

    cpu_before = cpu_seconds()
    sent = time.time()
    ids = enqueue_calls(count)
    rows = model.objects.filter(pk__in=ids)
    common.wait_for(lambda: rows.filter(status__in=ENDED).count() >= count, 600, "%d results" % count, 0.05)
    cpu = cpu_seconds() - cpu_before
    time.sleep(0.5)  # any second run would show up now
    bounds = rows.aggregate(first=Min("started_at"), last=Max("finished_at"))
    first, last = bounds["first"].timestamp(), bounds["last"].timestamp()
    return {
        "results": count,
        "results_per_s": count / max(last - first, 1e-9),
        "results_per_s_from_request": count / max(last - sent, 1e-9),
        "cpu_ms_per_result": ms(cpu) / count,
        **counted(env, rows, ids),
    }


def spooler_batch(env, server, client, count: int) -> dict:
    """One batch on the spooler backend: the calls enqueued by one request to a web worker."""
    from taskmanager.models import DjangoTaskResult

    return measure_batch(
        env,
        DjangoTaskResult,
        count,
        lambda n: enqueue(client, "noop", n)["ids"],
        lambda: tree_cpu_seconds(server.proc.pid),
    )


def counted(env, rows, ids) -> dict:
    """How the batch's rows ended and how often each call was entered (``noop.log``), counted."""
    entered = Counter()
    path = env.dir / "noop.log"
    if path.exists():
        entered.update(path.read_text().split())
    return {
        "successful": rows.filter(status="SUCCESSFUL").count(),
        "one_worker_id": sum(1 for w in rows.values_list("worker_ids", flat=True) if len(w) == 1),
        "entered_once": sum(1 for pk in ids if entered[str(pk)] == 1),
        "entered_twice_or_more": sum(1 for pk in ids if entered[str(pk)] > 1),
    }


def exactly_once(batch: dict) -> bool:
    n = batch["results"]
    return batch["successful"] == batch["one_worker_id"] == batch["entered_once"] == n


def bench_spooler_throughput(env, runs_per_child: int, count: int, batches: int, tasks) -> dict:
    """The spooler backend's batches, and beside them as many command runs on the same server."""
    from taskmanager.runner.child import fork_server_wanted

    os.environ["TM_TEST_SETTINGS"] = json.dumps({"TASKMANAGER_RUNS_PER_CHILD": runs_per_child})
    try:
        server = env.start_server(2)
    finally:
        os.environ.pop("TM_TEST_SETTINGS")
    try:
        client = env.admin(server)
        spooler_batch(env, server, client, 20)  # warm-up: the carrier task, imports
        rows = []
        for _ in range(batches):
            roles = cpu_by_role(server, fork_server_wanted())
            rows.append(spooler_batch(env, server, client, count))
            after = cpu_by_role(server, fork_server_wanted())
            rows[-1]["cpu_ms_per_result_by_role"] = {
                k: ms(after[k] - roles[k]) / count for k in ("spooler", "fork_server", "children")
            }
        commands = [command_batch(env, server, client, tasks) for _ in range(batches)]
    finally:
        env.stop_server(server)
    return {"runs_per_child": runs_per_child, "batches": rows, "command_batches": commands}


# -- 3. django-tasks-db's db_worker ------------------------------------------------------
def start_db_workers(env, count: int) -> list[subprocess.Popen]:
    log = open(env.dir / "db_worker.log", "ab")  # noqa: SIM115 - kept open by the workers
    argv = [sys.executable, "-m", "django", "db_worker", "--backend", "db", "--interval", "1"]
    argv += ["--no-startup-delay", "--no-reload", "--verbosity", "0"]
    environ = {**os.environ, **env.server_env(), "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(argv, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(count)
    ]
    time.sleep(3)  # Django set up, each worker in its polling loop
    for worker in workers:
        if worker.poll() is not None:
            raise RuntimeError("db_worker exited: %s" % (env.dir / "db_worker.log").read_text()[-2000:])
    return workers


def db_batch(env, workers, count: int) -> dict:
    """One batch on django-tasks-db: the calls enqueued here in one transaction, run by ``workers``."""
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    from bench.benchapp.djtasks import noop

    def enqueue_here(n):
        with transaction.atomic():
            return [noop.using(backend="db").enqueue().id for _ in range(n)]

    pids = [w.pid for w in workers]
    return measure_batch(env, DBTaskResult, count, enqueue_here, lambda: common.cpu_seconds(pids))


def bench_db_worker(env, count: int, batches: int, latency_runs: int) -> dict:
    from django_tasks_db.models import DBTaskResult

    from bench.benchapp.djtasks import stamp

    workers = start_db_workers(env, 2)
    try:
        db_batch(env, workers, 20)  # warm-up
        rows = [db_batch(env, workers, count) for _ in range(batches)]
        values = []
        for _ in range(latency_runs):
            before = time.time()
            pk = stamp.using(backend="db").enqueue().id
            status, entered = ended_row(DBTaskResult, pk)
            if status == "SUCCESSFUL":
                values.append(ms(entered - before))
            time.sleep(0.05)  # as between the spooler backend's calls
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    return {"workers": 2, "interval_s": 1, "batches": rows, "enqueue_to_entered_ms": summary(values)}


# -- output ------------------------------------------------------------------------
def median_of(rows: list[dict], key: str) -> float:
    values = sorted(r[key] for r in rows)
    return values[len(values) // 2]


def throughput_row(label: str, series: dict, target: bool) -> list:
    rows = series["batches"]
    rate = median_of(rows, "results_per_s")
    return [
        label,
        rate,
        verdict(rate, TARGETS["results_per_s_2_spoolers"], False) if target else "",
        "%.0f-%.0f" % (min(r["results_per_s"] for r in rows), max(r["results_per_s"] for r in rows)),
        median_of(rows, "results_per_s_from_request"),
        median_of(rows, "cpu_ms_per_result"),
        "yes" if all(exactly_once(r) for r in rows) else "NO",
    ]


def command_row(label: str, batches: list[dict]) -> list:
    """A throughput_row of bench_throughput.run_batch's batches (no-op command runs started by one action)."""
    rates = [b["runs_per_s_first_claim_to_last_report"] for b in batches]
    return [
        label,
        median_of(batches, "runs_per_s_first_claim_to_last_report"),
        "",
        "%.0f-%.0f" % (min(rates), max(rates)),
        median_of(batches, "runs_per_s_from_post"),
        median_of(batches, "cpu_ms_per_run"),
        "yes" if all(b["ran_once"] == b["tasks"] for b in batches) else "NO",
    ]


def report(results: dict, counts: dict) -> None:
    lat = results.get("latency") or []
    db = results.get("db_worker")
    if lat or db:
        table = []
        for s in lat:
            e = s["enqueue_to_entered_ms"]
            table.append(
                [
                    "spooler backend, %d spooler(s)" % s["spoolers"],
                    e["median"],
                    e["p95"],
                    e["max"],
                    "<=10 / p95 <=25",
                    "%s/%s"
                    % (
                        verdict(e["median"], TARGETS["latency_median_ms"]),
                        verdict(e["p95"], TARGETS["latency_p95_ms"]),
                    ),
                ]
            )
            f = s["floor_spool_to_entered_ms"]
            table.append(["  floor: uwsgi.spool() -> bare function", f["median"], f["p95"], f["max"], "", ""])
        if db and db.get("enqueue_to_entered_ms", {}).get("n"):
            e = db["enqueue_to_entered_ms"]
            table.append(
                ["django-tasks-db db_worker (--interval 1)", e["median"], e["p95"], e["max"], "", ""]
            )
        print_table(
            "1. enqueue() -> function entered, one call at a time, ms",
            ["", "median", "p95", "max", "target", ""],
            table,
        )
    rows = []
    for s in results.get("throughput") or []:
        child = "fresh" if s["runs_per_child"] == 1 else "reused"
        rows.append(throughput_row("spooler backend, %s child" % child, s, True))
        rows.append(command_row("  beside: command runs, same server", s["command_batches"]))
    if db:
        rows.append(throughput_row("django-tasks-db, 2 db_worker processes", db, False))
    if rows:
        print_table(
            "2. results per second, %d batch(es) of %d no-op calls enqueued in one transaction, 2 spooler "
            "processes / 2 workers (median of the batches; target >= %g as for command runs)"
            % (counts["batches"], counts["tasks"], TARGETS["results_per_s_2_spoolers"]),
            [
                "",
                "results/s (start->finish)",
                "",
                "by batch",
                "results/s (from enqueue)",
                "CPU ms/result",
                "all SUCCESSFUL exactly once",
            ],
            rows,
        )
    roles = []
    for s in results.get("throughput") or []:
        child = "fresh" if s["runs_per_child"] == 1 else "reused"
        for label, key, batches in (
            ("function calls, %s child" % child, "cpu_ms_per_result_by_role", s["batches"]),
            ("command runs, %s child" % child, "cpu_ms_per_run_by_role", s["command_batches"]),
        ):
            by_role = [b[key] for b in batches]
            roles.append([label, *(median_of(by_role, k) for k in ("spooler", "fork_server", "children"))])
    if roles:
        print_table(
            "   CPU ms per result by process under the spoolers (median of the batches)",
            ["", "spooler", "fork server (own)", "children"],
            roles,
        )


def main(argv=None) -> dict | int:
    argv = sys.argv[1:] if argv is None else argv
    if find_spec("django.tasks") is None:
        return rerun_on_django6(argv)
    options = common.parser(__doc__)
    options.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    options.add_argument("--batches", type=int, help="throughput batches per series")
    options.add_argument("--tasks", type=int, help="calls per throughput batch")
    args = options.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    counts = dict(QUICK if args.quick else FULL)
    counts.update({k: v for k, v in (("batches", args.batches), ("tasks", args.tasks)) if v})
    started = time.monotonic()
    import django

    results = common.new_results(
        args,
        "tasks",
        frequency=True,
        counts=counts,
        django=django.get_version(),
        load_before=os.getloadavg()[0],
    )
    print(
        "django.tasks benchmark: %s, Django %s, Python %s, %d CPUs, load %.2f"
        % (
            common.settings_line(results),
            django.get_version(),
            sys.version.split()[0],
            os.cpu_count() or 0,
            os.getloadavg()[0],
        )
    )
    env = common.BenchEnv(args.db, keep=args.keep)
    try:
        if "latency" in sections:
            results["latency"] = [bench_latency(env, n, counts["latency"]) for n in (1, 2)]
        if "throughput" in sections:
            from bench.bench_run_path import new_tasks

            tasks = new_tasks(COMMAND_PREFIX, counts["tasks"], "tm_noop")
            results["throughput"] = [
                bench_spooler_throughput(env, n, counts["tasks"], counts["batches"], tasks)
                for n in (1, REUSED_RUNS_PER_CHILD)
            ]
        if "db_worker" in sections:
            if find_spec("django_tasks_db"):
                results["db_worker"] = bench_db_worker(
                    env, counts["tasks"], counts["batches"], counts["db_latency"]
                )
            else:
                results["db_worker_skipped"] = "django-tasks-db is not installed in %s" % sys.executable
                print("db_worker: skipped, " + results["db_worker_skipped"])
    finally:
        env.close()
    report(results, counts)
    summary_figures = {}
    for s in results.get("latency") or []:
        summary_figures["enqueue_to_entered_median_ms_%d_spoolers" % s["spoolers"]] = s[
            "enqueue_to_entered_ms"
        ]["median"]
    for s in results.get("throughput") or []:
        key = "results_per_s_2_spoolers_%s_child" % ("fresh" if s["runs_per_child"] == 1 else "reused")
        summary_figures[key] = median_of(s["batches"], "results_per_s")
    if results.get("db_worker"):
        summary_figures["db_worker_results_per_s_2_workers"] = median_of(
            results["db_worker"]["batches"], "results_per_s"
        )
    results["targets"] = TARGETS
    results["summary"] = summary_figures
    return common.finish(results, started)


if __name__ == "__main__":
    outcome = main()
    sys.exit(outcome if isinstance(outcome, int) else 0)

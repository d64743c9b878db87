"""Benchmark the log viewer on a 1,000,000-line report.

Usage::

    python bench/bench_viewer.py [--quick] [--db sqlite|postgresql] [--lines 1000000] [--repeat 5]

Setup inserts the lines directly (``logstore.insert_rows``, as the supervisor
does): one line in 50 a WARNING, one in 1000 an ERROR, and a rare word on the
last line only. Each case then requests the admin view in-process through
Django's test client (the whole request: middleware, session, view, template)
and prints the best and median server time of ``--repeat`` requests and the
number of queries. Cases: the first, middle and last page for each level
filter, a text search that matches often and one that matches only the last
line (it reads the whole log), the follow endpoint at the end of the log, and
the whole download. Numbers only: nothing here asserts.
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _benchdb  # noqa: E402

from bench import common  # noqa: E402  (importable once _benchdb put the repository on the path)


def populate(lines: int):
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from taskmanager import logcapture, logstore
    from taskmanager.models import Command, Report, Task

    command = Command.objects.create(name="tm_spam", app_name="tests.testapp")
    task = Task.objects.create(name="viewer bench", command=command)
    report = Report.objects.create(
        task=task, trigger="start", result="ERRORS", finished_datetime=timezone.now(), end_reason="completed"
    )
    stamps = logstore.Stamps()
    start_us = int(time.time() * 1e6)
    started = time.perf_counter()
    batch = []
    warnings = errors = 0
    for seq in range(1, lines + 1):
        if seq % 1000 == 0:
            level, errors = logcapture.ERROR, errors + 1
        elif seq % 50 == 0:
            level, warnings = logcapture.WARNING, warnings + 1
        else:
            level = logcapture.INFO
        text = "line %d of the benchmark, item %d processed" % (seq, seq * 7)
        if seq == lines:
            text += " xylophone"
        batch.append(
            (report.pk, seq, level, logcapture.severity(level), "stdout", stamps(start_us + seq), text)
        )
        if len(batch) == 10000:
            with transaction.atomic():
                logstore.insert_rows(batch)
            batch = []
    with transaction.atomic():
        logstore.insert_rows(batch)
    Report.objects.filter(pk=report.pk).update(lines=lines, warnings=warnings, errors=errors)
    print("setup: %d lines inserted in %.1f s" % (lines, time.perf_counter() - started))
    User.objects.create_superuser("bench", "bench@example.com", "bench")
    return report


def measure(client, url, repeat, stream=False):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    queries = 0
    size = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            if stream:
                size = sum(len(chunk) for chunk in response.streaming_content)
            else:
                size = len(response.content)
            times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError("%s answered %s" % (url, response.status_code))
        queries = len(captured)
    return min(times), statistics.median(times), queries, size


def main(argv=None):
    parser = common.log_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = common.parse_log_args(parser, argv)
    results = {"bench": "viewer", "db": args.db, "quick": args.quick, "lines": args.lines, "cases": {}}
    name = _benchdb.setup(args.db)
    try:
        from django.conf import settings

        settings.ALLOWED_HOSTS = ["testserver"]
        from django.db import connection
        from django.test import Client

        report = populate(args.lines)
        if args.db == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        client = Client()
        client.login(username="bench", password="bench")
        base = "/admin/taskmanager/report/%d/log/" % report.pk
        middle = args.lines // 2
        cases = []
        for level in ("ALL", "WARNING", "ERROR"):
            cases += [
                ("%s first page" % level, base + "?level=%s" % level),
                ("%s middle page" % level, base + "?level=%s&after=%d" % (level, middle)),
                ("%s last page" % level, base + "?level=%s&last=1" % level),
                (
                    "%s page before the last" % level,
                    base + "?level=%s&before=%d" % (level, args.lines - 20000),
                ),
            ]
        cases += [
            ("search, frequent text, first page", base + "?level=ALL&q=processed"),
            ("search, rare word (whole log read)", base + "?level=ALL&q=xylophone"),
            ("search, rare word, ERROR filter", base + "?level=ERROR&q=xylophone"),
            ("follow at the end", base + "follow/?level=ALL&after=%d" % (args.lines - 10)),
            ("follow 500 lines", base + "follow/?level=ALL&after=%d" % middle),
        ]
        print(
            "viewer benchmark: db=%s, %d lines, best/median of %d requests (ms), queries, response bytes"
            % (args.db, args.lines, args.repeat)
        )
        for label, url in cases:
            best, median, queries, size = measure(client, url, args.repeat)
            print(
                "  %-38s %8.1f %8.1f   %2d queries  %8d bytes"
                % (label, best * 1000, median * 1000, queries, size)
            )
            sys.stdout.flush()
            results["cases"][label] = {"best_ms": best * 1000, "median_ms": median * 1000, "queries": queries}
        best, median, queries, size = measure(client, base + "download/", 1, stream=True)
        print(
            "  %-38s %8.1f ms  %d queries  %.1f MB (%.0f lines/s)"
            % ("download of the whole log", best * 1000, queries, size / 1e6, args.lines / best)
        )
        results["download"] = {"seconds": best, "megabytes": size / 1e6, "lines_per_s": args.lines / best}
    finally:
        if not args.keep:
            _benchdb.teardown(args.db, name)
    pages = {k: v for k, v in results["cases"].items() if "page" in k and not k.startswith("search")}
    worst = max(pages, key=lambda k: pages[k]["median_ms"]) if pages else None
    # The one JSON line bench/run.py collects (see bench/common.py); target: pages <= 200 ms.
    results["summary"] = {
        "worst_page_median_ms": round(pages[worst]["median_ms"], 1) if worst else None,
        "worst_page": worst,
        "rare_search_median_ms": round(
            results["cases"].get("search, rare word (whole log read)", {}).get("median_ms", 0), 1
        ),
        "download_lines_per_s": round(results.get("download", {}).get("lines_per_s", 0)),
    }
    print(json.dumps(results, sort_keys=True))
    return results


if __name__ == "__main__":
    main()

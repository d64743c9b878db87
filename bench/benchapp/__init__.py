"""Bench-only Django app loaded into the uWSGI server the benchmarks start.

It adds what a benchmark needs beside the shipped app, without touching it:

* the *floor*: a bare uWSGI spool function (``bench_floor``) and a view that
  spools it, so that the run path is measured beside what uWSGI alone costs in
  the same server;
* a count of the durable commits and of the SQL statements of each process
  (see :mod:`tests.support.sqlcount`), where ``TM_SQL_COUNT_DIR`` is set.
"""

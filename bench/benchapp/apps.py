import os

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class BenchConfig(AppConfig):
    name = "bench.benchapp"
    label = "benchapp"
    verbose_name = "Benchmarks (bench only)"

    def ready(self):
        from tests.support import sqlcount

        from . import floor

        # The same receiver as the tests' app (tests/testapp/apps.py): connected once,
        # where the bench counts (not in bench_throughput.py's servers: bench/common.py).
        if os.environ.get(sqlcount.DIR_ENV):
            connection_created.connect(sqlcount.install, dispatch_uid="tm-sql-count")
        floor.register()

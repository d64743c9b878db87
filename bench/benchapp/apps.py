from django.apps import AppConfig
from django.db.backends.signals import connection_created


class BenchConfig(AppConfig):
    name = "bench.benchapp"
    label = "benchapp"
    verbose_name = "Benchmarks (bench only)"

    def ready(self):
        from . import counters, floor

        connection_created.connect(counters.install, dispatch_uid="bench-counters")
        floor.register()

import json

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Enqueue a test django.tasks function (tests/testapp/djtasks.py) with JSON arguments; print its id."
    )

    def add_arguments(self, parser):
        parser.add_argument("function")
        parser.add_argument("arguments", nargs="*", help="each a JSON value")

    def handle(self, *args, **options):
        # Deferred: the test functions import django.tasks (or its backport), which may be missing.
        from tests.testapp.djtasks import FUNCTIONS

        result = FUNCTIONS[options["function"]].enqueue(*[json.loads(a) for a in options["arguments"]])
        self.stdout.write(result.id)

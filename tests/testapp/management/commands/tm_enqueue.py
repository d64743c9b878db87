import json

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Enqueue a test django.tasks function (tests/testapp/djtasks.py) with JSON arguments; print its id."
    )

    def add_arguments(self, parser):
        parser.add_argument("function")
        parser.add_argument("arguments", nargs="*", help="each a JSON value")
        parser.add_argument("--queue", default="", help="the queue (else the function's)")

    def handle(self, *args, **options):
        # Deferred: the test functions import django.tasks (or its backport), which may be missing.
        from tests.testapp.djtasks import FUNCTIONS

        function = FUNCTIONS[options["function"]]
        if options["queue"]:
            function = function.using(queue_name=options["queue"])
        result = function.enqueue(*[json.loads(a) for a in options["arguments"]])
        self.stdout.write(result.id)

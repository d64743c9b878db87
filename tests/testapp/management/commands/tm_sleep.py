import signal
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Sleep, printing a line per tick; optionally ignore SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--seconds", type=float, default=30)
        parser.add_argument("--tick", type=float, default=0.5)
        parser.add_argument("--ignore-term", action="store_true")

    def handle(self, *args, **options):
        if options["ignore_term"]:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        end = time.monotonic() + options["seconds"]
        n = 0
        while time.monotonic() < end:
            n += 1
            self.stdout.write("tick %d" % n)
            time.sleep(options["tick"])
        self.stdout.write("slept")

"""Example command that runs for a while, printing a line per step and reporting progress."""

import time

from django.core.management.base import BaseCommand

from taskmanager.progress import report_progress


class Command(BaseCommand):
    help = (
        "Pretend to rebuild a search index in --steps steps of --delay seconds "
        "(default 40 x 1 s), printing a line per step; the task page shows a progress bar."
    )

    def add_arguments(self, parser):
        parser.add_argument("--steps", type=int, default=40, help="Number of steps (default 40).")
        parser.add_argument("--delay", type=float, default=1.0, help="Seconds each step takes (default 1).")

    def handle(self, *args, **options):
        steps, delay = options["steps"], options["delay"]
        self.stdout.write("Rebuilding the search index in %d steps" % steps)
        report_progress(0, steps, "starting")
        for step in range(1, steps + 1):
            time.sleep(delay)
            self.stdout.write("step %d of %d: %d documents indexed" % (step, steps, step * 250))
            # Outside a task run (plain manage.py) this is a harmless no-op.
            report_progress(step, steps, "%d documents indexed" % (step * 250))
        self.stdout.write(self.style.SUCCESS("Search index rebuilt: %d documents." % (steps * 250)))

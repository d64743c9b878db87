import time

from django.core.management.base import BaseCommand

from taskmanager.progress import report_progress


class Command(BaseCommand):
    help = "Work through --steps steps of --tick seconds, reporting progress after each."

    def add_arguments(self, parser):
        parser.add_argument("--steps", type=int, default=20)
        parser.add_argument("--tick", type=float, default=0.5)
        parser.add_argument("--message", default="step")

    def handle(self, *args, **options):
        steps = options["steps"]
        report_progress(0, steps, "starting")
        for done in range(1, steps + 1):
            time.sleep(options["tick"])
            self.stdout.write("%s %d of %d" % (options["message"], done, steps))
            report_progress(done, steps, "%s %d" % (options["message"], done))
        self.stdout.write(self.style.SUCCESS("all %d steps done" % steps))

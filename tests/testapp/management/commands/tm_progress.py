import time

from django.core.management.base import BaseCommand

from taskmanager.progress import report_progress


class Command(BaseCommand):
    help = "Work through --steps steps of --tick seconds, reporting progress after each."

    def add_arguments(self, parser):
        parser.add_argument("--steps", type=int, default=20, help="number of steps")
        parser.add_argument("--tick", type=float, default=0.5, help="seconds per step")
        parser.add_argument("--message", default="step", help="word shown beside the bar")
        parser.add_argument("--warn-at", type=int, default=0, help="write a warning after this step")

    def handle(self, *args, **options):
        steps = options["steps"]
        report_progress(0, steps, "starting")
        for done in range(1, steps + 1):
            time.sleep(options["tick"])
            self.stdout.write("%s %d of %d" % (options["message"], done, steps))
            if done == options["warn_at"]:
                self.stdout.write(self.style.WARNING("step %d was slower than expected" % done))
            report_progress(done, steps, "%s %d" % (options["message"], done))
        self.stdout.write(self.style.SUCCESS("all %d steps done" % steps))

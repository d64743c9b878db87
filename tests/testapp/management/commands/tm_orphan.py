import subprocess
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start 'sleep' subprocesses meant to outlive the command; print their pids."

    def add_arguments(self, parser):
        parser.add_argument("--setsid", action="store_true", help="start them in a new session")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--linger", type=float, default=0, help="seconds to stay alive afterwards")

    def handle(self, *args, **options):
        for _ in range(options["count"]):
            # Inherits stdout and stderr: the pipes to the supervisor stay open.
            child = subprocess.Popen(["sleep", "300"], start_new_session=options["setsid"])
            self.stdout.write("orphan pid %d" % child.pid)
        self.stdout.flush()
        end = time.monotonic() + options["linger"]
        while time.monotonic() < end:
            time.sleep(0.1)

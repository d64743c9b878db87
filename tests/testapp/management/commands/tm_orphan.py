import os
import subprocess
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start 'sleep' subprocesses meant to outlive the command; print their pids."

    def add_arguments(self, parser):
        parser.add_argument("--setsid", action="store_true", help="start them in a new session")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--linger", type=float, default=0, help="seconds to stay alive afterwards")
        parser.add_argument("--until", default="", help="stop lingering once this file exists")
        parser.add_argument(
            "--brief", type=int, default=0, help="double-fork this many children that exit after 10 ms"
        )

    def handle(self, *args, **options):
        for _ in range(options["count"]):
            # Inherits stdout and stderr: the pipes to the supervisor stay open.
            child = subprocess.Popen(["sleep", "300"], start_new_session=options["setsid"])
            self.stdout.write("orphan pid %d" % child.pid)
        for _ in range(options["brief"]):
            # Double fork: the grandchild is orphaned at once and exits 10 ms later.
            pid = os.fork()
            if pid == 0:
                if os.fork() == 0:
                    time.sleep(0.01)
                os._exit(0)
            os.waitpid(pid, 0)
        if options["brief"]:
            self.stdout.write("%d brief orphans started" % options["brief"])
        self.stdout.flush()
        end = time.monotonic() + options["linger"]
        while time.monotonic() < end and not (options["until"] and os.path.exists(options["until"])):
            time.sleep(0.1)
            if options["brief"]:
                self.stdout.write("still running")
                self.stdout.flush()

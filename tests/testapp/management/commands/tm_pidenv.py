import json
import os
import sys
import threading
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print its pid, run marker and test variable as JSON; optionally change the process on the way."

    def add_arguments(self, parser):
        parser.add_argument("--set-env", default="", help="set TM_PIDENV_VAR to this")
        parser.add_argument("--chdir", default="", help="change the working directory")
        parser.add_argument("--tail", default="", help="write this last, without a newline")
        parser.add_argument("--thread", action="store_true", help="leave a daemon thread running")
        parser.add_argument("--seconds", type=float, default=0, help="sleep this long after printing")
        parser.add_argument("--exit", type=int, default=0, help="leave with this exit code")

    def handle(self, *args, **options):
        self.stdout.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "marker": os.environ.get("TASKMANAGER_RUN"),
                    "var": os.environ.get("TM_PIDENV_VAR"),
                    "cwd": os.getcwd(),
                }
            )
        )
        self.stdout.flush()
        if options["set_env"]:
            os.environ["TM_PIDENV_VAR"] = options["set_env"]
        if options["chdir"]:
            os.chdir(options["chdir"])
        if options["thread"]:
            threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
        if options["seconds"]:
            time.sleep(options["seconds"])
        if options["tail"]:
            sys.stdout.write(options["tail"])
        if options["exit"]:
            sys.exit(options["exit"])

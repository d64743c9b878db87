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
        parser.add_argument(
            "--redirect", default="", help="point fd 1 and fd 2 at this file (and leave them so)"
        )
        parser.add_argument("--umask", default="", help="set this umask (octal) and leave it so")
        parser.add_argument(
            "--late", default="", help="print this on fd 1 from a thread, after the run's end"
        )
        parser.add_argument("--late-after", type=float, default=0, help="... this many seconds after it")
        parser.add_argument("--print", default="", help="print this on sys.stdout (fd 1)")

    def handle(self, *args, **options):
        self.stdout.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "marker": os.environ.get("TASKMANAGER_RUN"),
                    "var": os.environ.get("TM_PIDENV_VAR"),
                    "cwd": os.getcwd(),
                    "umask": _umask(),
                    # What the standard streams say of themselves: a run's are pipes.
                    "seekable": [sys.stdout.seekable(), sys.stderr.seekable()],
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
        if options["redirect"]:
            fd = os.open(options["redirect"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        if options["umask"]:
            os.umask(int(options["umask"], 8))
        if options["print"]:
            print(options["print"], flush=True)
        if options["late"]:
            marker = os.environ.get("TASKMANAGER_RUN", "")
            args = (marker, options["late"], options["late_after"])
            threading.Thread(target=_late, args=args, daemon=True).start()
        if options["seconds"]:
            time.sleep(options["seconds"])
        if options["tail"]:
            sys.stdout.write(options["tail"])
        if options["exit"]:
            sys.exit(options["exit"])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _late(marker: str, text: str, after: float) -> None:
    """Once the run ended (its marker left the environment) and ``after`` seconds more: ``text`` on fd 1, end."""
    while os.environ.get("TASKMANAGER_RUN") == marker:
        time.sleep(0.0002)
    time.sleep(after)
    os.write(1, text.encode() + b"\n")

import logging
import sys

from django.core.management.base import BaseCommand

logger = logging.getLogger("testapp.spam")


def memory_kib(field: str) -> int:
    """Return a /proc/self/status memory field (VmRSS, VmHWM) in KiB, or 0."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Command(BaseCommand):
    help = "Write --lines short lines through self.stdout, logging or print; report memory at the end."

    def add_arguments(self, parser):
        parser.add_argument("--lines", type=int, default=1000)
        parser.add_argument("--via", choices=["stdout", "logging", "print"], default="stdout")
        parser.add_argument("--memory", action="store_true", help="end with a line giving the RSS growth")

    def handle(self, *args, **options):
        if options["memory"]:
            try:  # reset the peak (VmHWM) to the current RSS (Linux >= 4.0)
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass
        start_rss = memory_kib("VmRSS")
        count = options["lines"]
        if options["via"] == "stdout":
            write = self.stdout.write
            for n in range(count):
                write("line %d of the benchmark" % n)
        elif options["via"] == "logging":
            logger.setLevel(logging.INFO)
            info = logger.info
            for n in range(count):
                info("line %d of the benchmark", n)
        else:
            for n in range(count):
                print("line %d of the benchmark" % n)
            sys.stdout.flush()
        if options["memory"]:
            self.stdout.write("memory: rss_start_kib=%d hwm_kib=%d" % (start_rss, memory_kib("VmHWM")))

import logging
import sys

from django.core.management.base import BaseCommand

FAKE = "2026-01-01 00:00:00.000000 ERROR    taskmanager fake"
#: Every character Python's str.splitlines() (and so many text viewers) breaks a line at.
BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


class Command(BaseCommand):
    help = "Log messages whose later lines look like the task manager's own lines (download tests)."

    def handle(self, *args, **options):
        log = logging.getLogger("testapp.forge")
        log.warning("ok\n2026-01-01 00:00:00 ERROR [taskmanager] fake")
        for brk in BREAKS:
            log.warning("break %r%s%s", brk, brk, FAKE)
        print("printed\r%s" % FAKE)
        sys.stdout.flush()
        self.stdout.write("styled first\n%s" % FAKE, style_func=self.style.WARNING)

import os
import signal
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Leave the run's process group (join the parent's), ignore SIGTERM, and sleep."

    def handle(self, *args, **options):
        # setsid() is refused to a group leader; another group of the same
        # session is allowed: the supervisor's.
        os.setpgid(0, os.getpgid(os.getppid()))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.stdout.write("left the group: pgid %d" % os.getpgid(0))
        self.stdout.flush()
        while True:
            time.sleep(0.2)

import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Write time.time() (seconds since the epoch, UTC) as the first line, then end OK."

    def handle(self, *args, **options):
        self.stdout.write("%.6f" % time.time())

import ctypes
import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Crash the process with a segmentation fault (read address 0)."

    def handle(self, *args, **options):
        self.stdout.write("about to crash")
        sys.stdout.flush()
        ctypes.string_at(0)

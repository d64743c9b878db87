import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print numbered lines without end (until killed)."

    def add_arguments(self, parser):
        parser.add_argument("--width", type=int, default=100, help="characters per line")

    def handle(self, *args, **options):
        pad = "x" * max(0, options["width"] - 12)
        write = sys.stdout.write
        n = 0
        while True:
            n += 1
            write("%10d %s\n" % (n, pad))

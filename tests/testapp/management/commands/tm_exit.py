import os
import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Leave through sys.exit or os._exit with a code."

    def add_arguments(self, parser):
        parser.add_argument("--code", type=int, default=1)
        parser.add_argument("--hard", action="store_true", help="use os._exit")

    def handle(self, *args, **options):
        self.stdout.write("leaving with %d" % options["code"])
        sys.stdout.flush()
        if options["hard"]:
            os._exit(options["code"])
        sys.exit(options["code"])

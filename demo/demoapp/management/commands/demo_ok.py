"""Example command that ends OK: a few plain lines and a success line."""

import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Pretend to refresh a cache: prints what it does and ends OK."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=5, help="How many items to refresh (default 5).")

    def handle(self, *args, **options):
        items = options["items"]
        self.stdout.write("Refreshing %d cached items" % items)
        for number in range(1, items + 1):
            time.sleep(0.2)
            self.stdout.write("item %d refreshed" % number)
        self.stdout.write(self.style.SUCCESS("Cache refreshed: %d items." % items))

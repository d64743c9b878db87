"""Example command that ends with WARNINGS: warning lines but no error."""

import logging

from django.core.management.base import BaseCommand

logger = logging.getLogger("demoapp")


class Command(BaseCommand):
    help = "Pretend to check mailboxes: two of them are nearly full, which gives warnings."

    def handle(self, *args, **options):
        self.stdout.write("Checking 4 mailboxes")
        self.stdout.write("alice: 12% used")
        # A line written with the WARNING style counts as a warning ...
        self.stdout.write(self.style.WARNING("bob: 91% used, nearly full"))
        self.stdout.write("carol: 40% used")
        # ... and so does a logging record at WARNING level.
        logger.warning("%s: %d%% used, nearly full", "dave", 97)
        self.stdout.write(self.style.SUCCESS("Checked 4 mailboxes."))

"""Example command that ends with ERRORS: it reports errors but finishes normally."""

import logging

from django.core.management.base import BaseCommand

logger = logging.getLogger("demoapp")


class Command(BaseCommand):
    help = "Pretend to import 5 records, two of which are invalid: ends with errors."

    def handle(self, *args, **options):
        records = ["ok-1", "bad date", "ok-2", "ok-3", "missing name"]
        imported = 0
        for number, record in enumerate(records, 1):
            if record.startswith("ok"):
                imported += 1
                self.stdout.write("record %d imported" % number)
            elif number == 2:
                # An ERROR-styled line counts as an error ...
                self.stdout.write(self.style.ERROR("record %d rejected: %s" % (number, record)))
            else:
                # ... and so does a logging record at ERROR level.
                logger.error("record %d rejected: %s", number, record)
        self.stdout.write("Imported %d of %d records." % (imported, len(records)))

"""Example command that fails: it raises an exception half way."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Pretend to send a newsletter and crash on the third recipient: the run ends FAILED."

    def handle(self, *args, **options):
        recipients = ["alice@example.com", "bob@example.com", None, "dave@example.com"]
        for recipient in recipients:
            # The third recipient is None: .lower() raises AttributeError, and the
            # report shows the traceback and the result FAILED.
            self.stdout.write("sending to %s" % recipient.lower())
        self.stdout.write("all sent")

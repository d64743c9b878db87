import logging

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "End with warnings."

    def handle(self, *args, **options):
        self.stdout.write("starting")
        self.stdout.write(self.style.WARNING("this is a styled warning"))
        logging.getLogger("testapp").warning("this is a logged warning")

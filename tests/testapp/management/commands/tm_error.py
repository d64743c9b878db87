import logging

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "End with errors (but no exception)."

    def handle(self, *args, **options):
        self.stdout.write("starting")
        self.stdout.write(self.style.ERROR("this is a styled error"))
        logging.getLogger("testapp").error("this is a logged error")
        self.stdout.write("ERROR is only a word in this plain line")

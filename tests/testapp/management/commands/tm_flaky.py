from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Fail while the state file says 'fail', succeed otherwise."

    def add_arguments(self, parser):
        parser.add_argument("--state", required=True, help="path of the state file")

    def handle(self, *args, **options):
        state = Path(options["state"])
        self.stdout.write("state file says %s" % state.read_text().strip())
        if state.read_text().strip() == "fail":
            raise CommandError("the state file says fail")
        self.stdout.write("all good")

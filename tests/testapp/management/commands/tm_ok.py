from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print a few lines and end OK."

    def add_arguments(self, parser):
        parser.add_argument("--lines", type=int, default=3)
        parser.add_argument("--word", action="append", default=[])

    def handle(self, *args, **options):
        for i in range(options["lines"]):
            self.stdout.write("line %d %s" % (i + 1, " ".join(options["word"])))
        self.stdout.write(self.style.SUCCESS("done"))

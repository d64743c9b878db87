from django.core.management.base import BaseCommand

# Grows at every run of this command in the same process: a leak that a
# runner executing commands inside the spooler process would accumulate.
LEAKED = []


class Command(BaseCommand):
    help = "Leak --megabytes MiB into a module-level list, then report how much is leaked in this process."

    def add_arguments(self, parser):
        parser.add_argument("--megabytes", type=int, default=1)

    def handle(self, *args, **options):
        LEAKED.append(bytearray(options["megabytes"] * 1024 * 1024))
        self.stdout.write("leaked %d MiB in this process" % sum(len(b) >> 20 for b in LEAKED))

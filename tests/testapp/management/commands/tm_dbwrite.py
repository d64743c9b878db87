import os

from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Write --rows task categories named <--prefix>-<n> in transactions, read them back, end OK."

    def add_arguments(self, parser):
        parser.add_argument("--prefix", default="dbwrite")
        parser.add_argument("--rows", type=int, default=20)
        parser.add_argument("--touch", default="", help="also create this file (proof that the command ran)")

    def handle(self, *args, **options):
        from taskmanager.models import TaskCategory

        if options["touch"]:
            with open(options["touch"], "w") as fh:
                fh.write(str(os.getpid()))
        prefix = "%s-%d" % (options["prefix"], os.getpid())
        for i in range(options["rows"]):
            with transaction.atomic():
                TaskCategory.objects.create(name="%s-%d" % (prefix, i))
        found = TaskCategory.objects.filter(name__startswith=prefix + "-").count()
        self.stdout.write("wrote %d, read %d" % (options["rows"], found))

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Fail with a CommandError, or with an exception raised inside the ORM."

    def add_arguments(self, parser):
        parser.add_argument("--orm", action="store_true", help="fail inside a query (Task.DoesNotExist)")
        parser.add_argument("--code", type=int, default=1, help="the CommandError's returncode")

    def handle(self, *args, **options):
        self.stdout.write("about to fail")
        if options["orm"]:
            self.look_up()
        raise CommandError("no such file: missing.csv", returncode=options["code"])

    def look_up(self):
        from taskmanager.models import Task

        Task.objects.get(name="no task has this name")

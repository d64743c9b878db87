"""tm_parsed whose parser reads the database: choices of --task (tests/test_prebuilt_parsers.py)."""

from taskmanager.models import Task

from .tm_parsed import Command as Parsed


class Command(Parsed):
    help = "As tm_parsed, with --task choosing among the tasks' names as the database has them now."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--task", choices=list(Task.objects.values_list("name", flat=True)))

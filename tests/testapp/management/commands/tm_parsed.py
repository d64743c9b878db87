"""Print the options a run got and whether its parser was built in this process (tests/test_prebuilt_parsers.py)."""

import json
import os

from django.core.management.base import BaseCommand

#: The pid of each process that ran add_arguments (a fork server's children inherit its list).
BUILT_IN: list[int] = []


class Command(BaseCommand):
    help = (
        "Print the options it got (a mutable --tag default it then changes) and where its parser was built."
    )

    def add_arguments(self, parser):
        BUILT_IN.append(os.getpid())
        parser.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
        parser.add_argument("--limit", type=int, default=1, help="an integer")

    def handle(self, *args, **options):
        tags = options["tag"]
        tags.append("changed by the run")  # a run that changes its options: the next run must not see it
        report = {
            "pid": os.getpid(),
            "builds_here": BUILT_IN.count(os.getpid()),
            "tag": tags,
            "limit": options["limit"],
            "skip_checks": options["skip_checks"],
            "verbosity": options["verbosity"],
        }
        self.stdout.write(json.dumps(report))

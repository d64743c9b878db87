"""tm_parsed whose parser can only be built during a run (tests/test_prebuilt_parsers.py)."""

import os

from taskmanager.processes import RUN_ENV

from .tm_parsed import Command as Parsed


class Command(Parsed):
    help = "As tm_parsed, but building its parser outside a run raises."

    def add_arguments(self, parser):
        if RUN_ENV not in os.environ:
            raise RuntimeError("tm_parsed_late builds its parser only in a run")
        super().add_arguments(parser)

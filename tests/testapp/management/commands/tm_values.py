"""Values out of every database's range (tests/test_faults.py): levels and progress numbers."""

import logging

from django.core.management.base import BaseCommand

from taskmanager.progress import report_progress

logger = logging.getLogger("tests.values")


class Command(BaseCommand):
    help = "Log at levels no database column holds and report progress numbers too large for any."

    def handle(self, *args, **options):
        logger.log(40000, "level forty thousand")
        logger.log(70000, "level seventy thousand")
        report_progress(10**19, 10**20, "huge")
        self.stdout.write("after the huge values")

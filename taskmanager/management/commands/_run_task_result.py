"""The internal command a django.tasks run's child runs: ``_run_task_result <id>`` (taskmanager.djangotasks).

Its leading underscore keeps it out of ``manage.py help`` and of
``collect_commands``; it runs nothing unless the row is claimed for the
run it is part of (:func:`taskmanager.djangotasks.work.claimed_row`).
"""

from django.core.management.base import BaseCommand

from ...djangotasks import work


class Command(BaseCommand):
    help = "Run one claimed django.tasks result (internal: the spooler runs it in a run's child)."

    def add_arguments(self, parser):
        parser.add_argument("result_id")

    def handle(self, *args, result_id, **options):
        work.run_result(result_id)

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Raise an exception."

    def handle(self, *args, **options):
        self.stdout.write("about to fail")
        raise ValueError("boom from tm_raise")

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Do nothing and end OK (the smallest possible run)."

    def handle(self, *args, **options):
        pass

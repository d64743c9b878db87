from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Write its positional arguments back, as plain, warning and error lines."

    def add_arguments(self, parser):
        parser.add_argument("words", nargs="*")

    def handle(self, *args, **options):
        text = " ".join(options["words"])
        self.stdout.write(text)
        self.stdout.write(self.style.WARNING("warning: " + text))
        self.stdout.write(self.style.ERROR("error: " + text))

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Need --name; take an integer --count."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="who to greet")
        parser.add_argument("--count", type=int, default=1, help="how many times")
        parser.add_argument("--mode", choices=["fast", "slow"], default="fast")

    def handle(self, *args, **options):
        for _ in range(options["count"]):
            self.stdout.write("hello %s" % options["name"])

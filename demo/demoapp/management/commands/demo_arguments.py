"""Example command taking the arguments of the user guide's example, printing what it received.

Its task's arguments are the guide's ``-f, --secondarg param1 param2,
--thirdarg=pippo, --thirdarg``: a flag, an option with several values and an
option whose value may be given or left out (here once each way).
"""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Try the argument syntax: a flag (-f), an option with one or more values "
        "(--secondarg param1 param2) and an option with an optional value "
        "(--thirdarg=pippo, or --thirdarg alone; repeatable). Prints what its parser made of them."
    )

    def add_arguments(self, parser):
        parser.add_argument("-f", "--flag", action="store_true", help="A flag: given or not, no value.")
        parser.add_argument(
            "--secondarg", nargs="+", metavar="PARAM", help="An option taking one or more values."
        )
        parser.add_argument(
            "--thirdarg",
            nargs="?",
            action="append",
            metavar="VALUE",
            help="An option whose value may be left out (None); each time it is given is kept.",
        )

    def handle(self, *args, **options):
        for name in ("flag", "secondarg", "thirdarg"):
            self.stdout.write("%s = %r" % (name, options[name]))
        self.stdout.write(self.style.SUCCESS("Arguments parsed as shown above."))

import argparse
import os

from django.core.management.base import BaseCommand

#: Environment variable naming the file that --touch-env creates when it is parsed.
MARKER_ENV = "TM_ARGSAFE_MARKER"


class WriteMarkerAction(argparse.Action):
    """Write TEXT into PATH while the arguments are being parsed (two values)."""

    def __call__(self, parser, namespace, values, option_string=None):
        path, text = values
        with open(path, "w") as fh:
            fh.write(text)
        setattr(namespace, self.dest, values)


class TouchEnvMarkerAction(argparse.Action):
    """Create the file named by $TM_ARGSAFE_MARKER while parsing; takes no value (nargs set here)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        with open(os.environ[MARKER_ENV], "w") as fh:
            fh.write("touched while parsing")
        setattr(namespace, self.dest, True)


class Command(BaseCommand):
    help = "Arguments whose custom actions act when parsed; a sub-command with a file argument."

    def add_arguments(self, parser):
        parser.add_argument("--mark", nargs=2, metavar=("PATH", "TEXT"), action=WriteMarkerAction)
        parser.add_argument("--touch-env", action=TouchEnvMarkerAction)
        subparsers = parser.add_subparsers(dest="subcommand")
        export = subparsers.add_parser("export", aliases=["exp"])
        export.add_argument("--to", type=argparse.FileType("w"), help="file to write")
        export.add_argument("--mark", nargs=2, metavar=("PATH", "TEXT"), action=WriteMarkerAction)

    def handle(self, *args, **options):
        self.stdout.write("subcommand: %s" % options["subcommand"])

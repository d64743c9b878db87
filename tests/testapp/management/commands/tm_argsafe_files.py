import argparse

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Copy --in (or write a fixed line) to --out; arguments that open files when parsed."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=argparse.FileType("w"), help="file to write (created/truncated)")
        parser.add_argument("--append", type=argparse.FileType("a"), help="file to append to")
        parser.add_argument("--new", type=argparse.FileType("x"), help="file to create, must not exist")
        parser.add_argument("--in", dest="infile", type=argparse.FileType("r"), help="file to read")
        parser.add_argument("--text", type=open, help="file to read, opened with open()")
        parser.add_argument(
            "--log",
            type=argparse.FileType("w"),
            default="tm_argsafe_default.log",
            help="file to write, with a relative default",
        )
        parser.add_argument(
            "--echo",
            type=argparse.FileType("w"),
            default="-",
            help="file to write, standard output by default",
        )

    def handle(self, *args, **options):
        text = options["infile"].read() if options["infile"] else "written by tm_argsafe_files\n"
        for name in ("out", "append", "new", "log"):
            if options[name]:
                options[name].write(text)
                options[name].close()
        for name in ("infile", "text"):
            if options[name]:
                options[name].close()

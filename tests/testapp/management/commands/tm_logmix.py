import logging
import os
import shutil
import subprocess
import sys
import warnings

from django.core.management.base import BaseCommand

# Written by a subprocess straight to fd 1 and 2: invalid UTF-8, a NUL, a
# progress bar redrawn with carriage returns, and a last line with no newline.
SUBPROCESS = r"""
import os
os.write(1, b"sub out 1\n")
os.write(2, b"sub err 1\n")
os.write(1, b"sub bad \xff\xfe utf8 and nul \x00 here\n")
os.write(1, b"sub progress 10%\rsub progress 50%\rsub progress 100%\n")
os.write(1, b"\x1b[32msub green\x1b[0m\n")
os.write(1, b"sub no final newline")
"""


def python() -> str:
    """Return a Python interpreter (under uWSGI, sys.executable is the uwsgi binary)."""
    beside = os.path.join(os.path.dirname(sys.executable), "python3")
    if "python" in os.path.basename(sys.executable):
        return sys.executable
    return beside if os.path.exists(beside) else shutil.which("python3") or "python3"


class Command(BaseCommand):
    help = "Write through every channel a command has, at every level (log capture tests)."

    def add_arguments(self, parser):
        parser.add_argument("--long", type=int, default=0, help="also print a line of this many characters")

    def handle(self, *args, **options):
        log = logging.getLogger("testapp.logmix")
        log.setLevel(logging.DEBUG)
        private = logging.getLogger("testapp.private")
        private.propagate = False
        private.setLevel(logging.DEBUG)

        self.stdout.write("out 1 plain")
        self.stdout.write(self.style.SUCCESS("out 2 success"))
        self.stdout.write(self.style.NOTICE("out 3 notice"))
        self.stdout.write(self.style.WARNING("out 4 warning"))
        self.stdout.write(self.style.ERROR("out 5 error"))
        self.stdout.write("out 6 first\nout 6 second", style_func=self.style.WARNING)
        self.stdout.write("out 7 after styles")
        self.stderr.write("err 1 plain")
        self.stderr.write(self.style.WARNING("err 2 styled warning"))

        log.debug("log debug")
        log.info("log info")
        log.warning("log warning")
        log.error("log error")
        log.critical("log critical")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("log exception")
        private.warning("private warning")

        print("print 1")
        if options["long"]:
            print("L" * options["long"])
        print("print 2 to stderr", file=sys.stderr)
        warnings.warn("python warning", UserWarning, stacklevel=1)
        sys.stdout.flush()
        sys.stderr.flush()
        subprocess.run([python(), "-c", SUBPROCESS], check=True)

        self.stdout.write(
            "<script>alert(1)</script> see https://example.com/a?b=1&c=<x> or javascript:alert(2)"
        )
        self.stdout.write("out nul \x00 and lone surrogate \udc80 in a record")
        self.stdout.write("\x1b[31mout red\x1b[0m")
        self.stdout.write("out 50%\rout 100%")
        self.stdout.write("out last without newline", ending="")

import json
import os
import socket

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print the process identity as JSON."

    def handle(self, *args, **options):
        self.stdout.write(
            json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "host": socket.gethostname(), "cwd": os.getcwd()})
        )

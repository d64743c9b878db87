import logging
import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from taskmanager.progress import report_progress


class Command(BaseCommand):
    help = "Print the project's secrets every way a command can, then fail quoting one (redaction tests)."

    def handle(self, *args, **options):
        password = settings.DATABASES["reporting"]["PASSWORD"]
        token = os.environ["TM_TEST_API_TOKEN"]
        self.stdout.write("secret key: %s" % settings.SECRET_KEY)
        self.stdout.write("old key: %s" % settings.SECRET_KEY_FALLBACKS[0])
        self.stdout.write("database password: %s" % password)
        self.stdout.write("database url: %s" % os.environ["DATABASE_URL"])
        self.stdout.write("e-mail password: %s" % settings.EMAIL_HOST_PASSWORD)
        self.stdout.write("cache: %s" % settings.CACHES["default"]["LOCATION"])
        self.stdout.write("webhook: %s" % settings.TASKMANAGER_NOTIFY_WEBHOOK_URL)
        self.stdout.write("named by the project: %s" % settings.PAYMENT_PROVIDER_SECRET)
        self.stdout.write("token from the environment: %s" % token)
        self.stdout.write("dsn: postgres://bob:url-pass-4417@db.example.com:5432/x")
        self.stdout.write("signed: https://bucket.example.com/f?X-Amz-Signature=0a1b2c3d4e5f&X-Amz-Date=1")
        self.stdout.write("header: Authorization: Bearer eyJhbGciOi.payload.sig")
        self.stdout.write("customer number: cust-998877")
        print("on stderr: %s" % settings.SECRET_KEY, file=sys.stderr)
        logging.getLogger("testapp.secrets").warning("logged %s\nand on a second line %s", password, token)
        report_progress(1, 2, "progress %s" % token)
        raise RuntimeError("could not connect with %s" % password)

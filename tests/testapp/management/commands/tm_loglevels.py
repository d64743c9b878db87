import logging

from django.conf import settings
from django.core.management.base import BaseCommand

# Module loggers, as a project's commands have them: their levels come from
# the project's LOGGING, if any (tests/test_log_levels.py).
inherited = logging.getLogger("testapp.loglevels")
quiet = logging.getLogger("testapp.quiet")
chatty = logging.getLogger("testapp.chatty")


class Command(BaseCommand):
    help = "Log at every level on loggers with and without a level of their own (log level tests)."

    def add_arguments(self, parser):
        parser.add_argument("--secrets", action="store_true", help="log the secret key below the root's level")

    def handle(self, *args, **options):
        if options["secrets"]:
            # Records only TASKMANAGER_LOG_LEVEL lets through (redaction tests).
            inherited.debug("debug with %s", settings.SECRET_KEY)
            try:
                raise ValueError("failed with %s" % settings.SECRET_KEY)
            except ValueError:
                inherited.info("info with a traceback", exc_info=True, stack_info=True)
        inherited.debug("inherited debug")
        inherited.info("inherited info")
        inherited.warning("inherited warning")
        quiet.info("quiet info")
        quiet.warning("quiet warning")
        chatty.debug("chatty debug")
        logging.getLogger().info("root info")
        self.stdout.write("done")

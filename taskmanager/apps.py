from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaskManagerConfig(AppConfig):
    name = "taskmanager"
    verbose_name = _("Task manager")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: they use the models (app registry).
        from . import checks, db, uwsgi_runtime  # checks registers the system checks
        from .djangotasks import checks as tasks_checks  # noqa: F401 - registers E020

        # With DATABASE_ROUTERS, the run path reads the write database (taskmanager.db).
        db.install()

        if uwsgi_runtime.spooler_configured():
            # Under uWSGI with spoolers, register the spool handler in the
            # process that loads Django, so that forked spoolers inherit it
            # (non-lazy mode).
            from .spooler import uwsgi_handler

            uwsgi_handler.register_handler()
        # Django never runs system checks inside uWSGI: log the uWSGI ones
        # when web workers and spoolers start (see taskmanager.checks).
        checks.install_uwsgi_checks()

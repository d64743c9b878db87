from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaskManagerConfig(AppConfig):
    name = "taskmanager"
    verbose_name = _("Task manager")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # registers the system checks
        from .spooler import uwsgi as uwsgi_backend

        # Under uWSGI, register the spool handler in the process that loads
        # Django, so that forked spoolers inherit it (non-lazy mode).
        uwsgi_backend.register_handler()
        # Django never runs system checks inside uWSGI: log the uWSGI ones
        # when web workers and spoolers start (see taskmanager.checks).
        checks.install_uwsgi_checks()

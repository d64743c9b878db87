"""The demo's one model entry: *Try django.tasks*, the admin page that enqueues the demo's functions.

A proxy of the task manager's ``DjangoTaskResult`` with no table of its own:
it only gives the page (:class:`demoapp.admin.TryDjangoTasksAdmin`) its place
in the admin's index and sidebar, which list models, not views.
"""

from taskmanager.models import DjangoTaskResult


class TryDjangoTasks(DjangoTaskResult):
    class Meta:
        proxy = True
        verbose_name = "django.tasks function"
        verbose_name_plural = "Try django.tasks"

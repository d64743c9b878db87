"""*Demo > Try django.tasks*: a page that enqueues the demo's ``@task`` functions and shows their result.

The page lists the functions of :mod:`demoapp.tasks` with a form each (one
takes no arguments, one takes a text and a number). A POST (with Django's
CSRF token, as every admin form) enqueues one call through the configured
backend, the spooler's (``TASKS`` in ``demoproject.settings``), and
redirects to the call's page in *Task manager > Task results*, where its
status, return value and log appear within a second.

Who may use it: an active staff user who may run function runs (the run
rights of the internal command every function run goes through,
:func:`taskmanager.policy.user_refusal`: superusers until a superuser opens
that command to others) and see their results (``view_djangotaskresult``);
the page is hidden from the others and answers 403 to them. No add, change
or delete: the proxy model only places the page in the admin.

The django.tasks API is Django 6's, or on Django 5.2 the ``django-tasks``
backport's (``make demo`` installs Django 6.1 where a Python 3.12 or later
is found, else Django 5.2 and the backport); where neither is installed the
page says so and enqueues nothing.
"""

import django
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from taskmanager import policy
from taskmanager.admin_results import carrier_command
from taskmanager.djangotasks import api

from .models import TryDjangoTasks

#: Whether the django.tasks API is installed (Django 6.0+, or the backport on 5.2).
HAS_DJANGO_TASKS = api.SOURCE is not None
#: The ``top`` of count_words that the form accepts.
TOP_RANGE = range(1, 21)


def may_enqueue(user) -> bool:
    """Whether ``user`` may enqueue the demo's functions here (see the module's docstring)."""
    return (
        user.is_active
        and user.is_staff
        and user.has_perm("taskmanager.view_djangotaskresult")
        and policy.user_refusal(user, carrier_command()) is None
    )


def demo_functions():
    """{name: the @task function} of :mod:`demoapp.tasks`."""
    # Deferred: demoapp.tasks needs the django.tasks API, which may not be installed (HAS_DJANGO_TASKS).
    from . import tasks

    return {"daily_report": tasks.daily_report, "count_words": tasks.count_words}


@admin.register(TryDjangoTasks)
class TryDjangoTasksAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):
        return may_enqueue(request.user)

    def has_view_permission(self, request, obj=None):
        return may_enqueue(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        page = self.admin_site.admin_view(self.enqueue_view)
        return [path("", page, name="demoapp_trydjangotasks_changelist")]

    def enqueue_view(self, request):
        if not may_enqueue(request.user):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Try django.tasks",
            "opts": self.model._meta,
            "has_django_tasks": HAS_DJANGO_TASKS,
            "django_version": django.get_version(),
            "api_source": api.SOURCE,
            "top_range": TOP_RANGE,
        }
        if request.method == "POST" and HAS_DJANGO_TASKS:
            result = self.enqueue(request)
            if result is not None:
                self.message_user(
                    request,
                    "Enqueued %s: a spooler runs it within a second. Reload this page to see its status "
                    "change from Ready to Successful, its return value and its log." % result.task.name,
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:taskmanager_djangotaskresult_change", args=[result.id])
                )
            context["error"] = True
        return TemplateResponse(request, "demoapp/try_django_tasks.html", context)

    def enqueue(self, request):
        """Enqueue the call the POST asks for; return its TaskResult, or None (with a message) if refused."""
        function = demo_functions().get(request.POST.get("function", ""))
        if function is None:
            self.message_user(request, "Choose one of the functions below.", messages.ERROR)
            return None
        if function.name != "count_words":
            return function.enqueue()
        text = request.POST.get("text", "").strip()
        try:
            top = int(request.POST.get("top", ""))
        except ValueError:
            top = None
        if not text or top not in TOP_RANGE:
            self.message_user(request, "count_words needs a text and a number from 1 to 20.", messages.ERROR)
            return None
        return function.enqueue(text, top=top)

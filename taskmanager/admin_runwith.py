"""Run now with other arguments: the task page's form for a one-off run with arguments of its own.

A page of the task admin (``<id>/run-with-arguments/``): GET shows the form
prefilled with the task's arguments, POST (with Django's CSRF protection)
queues a Run now whose arguments are this run's only (``actions.run_now``
with ``other``). Only for whoever may change the task's arguments
(``run_task``, ``change_task`` and the command's run rights:
``policy.other_arguments_refusal``); the arguments are checked as a save
checks them (``forms.OtherArgumentsForm``), locked arguments included.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _

from . import actions, arguments, callargs, policy, taskfunctions
from .forms import OtherArgumentsForm
from .models import Task


def may_run_with_other_arguments(request, task) -> bool:
    """Whether the user may run ``task`` once with other arguments (the control is shown)."""
    return (
        request.user.has_perm(policy.RUN_PERMISSION)
        and policy.other_arguments_refusal(request.user, task) is None
    )


class OtherArgumentsMixin:
    """Adds the page and, on the task's page, the control that leads to it (TaskAdmin)."""

    other_arguments_template = "admin/taskmanager/task/run_with_arguments.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.other_arguments_view)
        return [
            path("<path:object_id>/run-with-arguments/", view, name="taskmanager_task_run_with_arguments"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_run_other_arguments"] = obj is not None and may_run_with_other_arguments(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def other_arguments_view(self, request, object_id):
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if not request.user.has_perm(policy.RUN_PERMISSION):
            raise PermissionDenied
        try:
            task = Task.objects.select_related("command").get(pk=object_id)
        except (Task.DoesNotExist, ValueError, ValidationError):
            raise Http404(_("This task does not exist (any more).")) from None
        if not may_run_with_other_arguments(request, task):
            raise PermissionDenied
        change_url = reverse("admin:taskmanager_task_change", args=[task.pk])
        if request.method == "POST":
            form = OtherArgumentsForm(request.POST, task=task)
            if form.is_valid():
                outcome = actions.run_now(
                    task, request.user, version=form.cleaned_data["version"], other=form.cleaned_data["arguments"]
                )
                self.message_user(request, outcome.message, messages.SUCCESS if outcome.ok else messages.WARNING)
                return HttpResponseRedirect(change_url)
        else:
            form = OtherArgumentsForm(initial={"arguments": task.arguments, "version": task.version}, task=task)
        try:
            own = callargs.run_line(task.command, callargs.argv_of(task.command, task.arguments))
        except arguments.ArgumentsError:
            own = task.arguments
        refusal = policy.command_refusal(task.command)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Run now with other arguments"),
            "subtitle": task.name,
            "opts": self.opts,
            "original": task,
            "form": form,
            "own_command_line": own,
            "change_url": change_url,
            "refusal": _("This task cannot run. %(reason)s") % {"reason": refusal} if refusal else "",
            # (the parser of a blocked or inactive command is not loaded)
            "usage": "" if refusal else taskfunctions.usage(task.command),
        }
        return TemplateResponse(request, self.other_arguments_template, context)

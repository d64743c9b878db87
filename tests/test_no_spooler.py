"""Outside uWSGI, Start never runs the command inside the web request."""

import pytest
from django.urls import reverse

from taskmanager.models import Report, Task

from .support.objects import make_task

pytestmark = pytest.mark.django_db


def test_start_without_spooler_explains(client, django_user_model, commands):
    user = django_user_model.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(user)
    task = make_task(commands, "no spooler")
    resp = client.post(reverse("admin:taskmanager_task_start", args=[task.pk]), follow=True)
    assert resp.status_code == 200
    assert "No uWSGI spooler is available" in resp.content.decode()
    task.refresh_from_db()
    assert task.status == Task.Status.IDLE
    assert not Report.objects.exists()

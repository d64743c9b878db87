"""URLs of the bench project: the test project's admin plus the floor view (and, on Django 6.0+, the
django.tasks enqueue view of bench/bench_tasks.py)."""

from importlib.util import find_spec

from django.urls import path

from bench.benchapp.floor import floor_view
from tests.urls import urlpatterns as test_urlpatterns

urlpatterns = [*test_urlpatterns, path("bench/floor/", floor_view)]

if find_spec("django.tasks"):  # Django 6.0+
    from bench.benchapp.djtasks import enqueue_view

    urlpatterns.append(path("bench/tasks/enqueue/", enqueue_view))

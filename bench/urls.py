"""URLs of the bench project: the test project's admin plus the floor view."""

from django.urls import path

from bench.benchapp.floor import floor_view
from tests.urls import urlpatterns as test_urlpatterns

urlpatterns = [*test_urlpatterns, path("bench/floor/", floor_view)]

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]

try:
    import django.tasks  # noqa: F401 - Django 6.0+ only: the django.tasks backend's tests
except ImportError:
    pass
else:
    from .testapp.djtasks import enqueue_view, result_view

    urlpatterns += [path("tm-test/enqueue/", enqueue_view), path("tm-test/result/", result_view)]

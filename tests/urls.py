from django.contrib import admin
from django.urls import path

from taskmanager.djangotasks import api

urlpatterns = [path("admin/", admin.site.urls)]

if api.SOURCE:  # django.tasks (Django 6.0+) or its backport: the backend's tests
    from .testapp.djtasks import enqueue_view, result_view

    urlpatterns += [path("tm-test/enqueue/", enqueue_view), path("tm-test/result/", result_view)]

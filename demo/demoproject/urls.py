from django.contrib import admin
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/taskmanager/task/", permanent=False)),
    # Browsers ask every site for /favicon.ico: point them at the demo's icon
    # (collected with the static files, served by uWSGI's static-map) instead
    # of a 404 on every page.
    path("favicon.ico", RedirectView.as_view(url=static("demoapp/favicon.ico"), permanent=True)),
]

"""WSGI entry point of the demo project (served by uWSGI, see ../uwsgi.ini)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demoproject.settings")
application = get_wsgi_application()

"""Test-only middleware: activate the zone named by the TM_TEST_REQUEST_ZONE setting.

It stands for a project that activates each user's own zone per request, so
a test can check that schedules ignore the request's zone.
"""

from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


class ActivateZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = getattr(settings, "TM_TEST_REQUEST_ZONE", None)
        if name:
            timezone.activate(ZoneInfo(name))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

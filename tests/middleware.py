"""Test-project middleware for the uWSGI server the tests start."""

from django.contrib.contenttypes.models import ContentType


class ClearContentTypeCacheMiddleware:
    """Drop the process's ContentType cache before each request.

    The tests flush the database between tests while the server keeps
    running; flush re-creates content types with new ids, so ids cached in a
    worker would point at deleted rows (admin LogEntry inserts then fail).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ContentType.objects.clear_cache()
        return self.get_response(request)

"""The app's one date-time format in templates: ``{{ value|tm_datetime }}`` (see :mod:`taskmanager.datetimes`)."""

from django import template

from .. import datetimes

register = template.Library()


@register.filter
def tm_datetime(value):
    """Return an aware datetime as the app shows one (``2026-12-06 07:15:09``), "-" for None."""
    return datetimes.format_datetime(value)

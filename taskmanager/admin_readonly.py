"""Admin pages of rows only the app writes (audit entries, django.tasks results).

Such a row records what happened; the admin shows it and nobody adds,
changes or deletes one there (the app's retention deletes old ones).
"""


class WrittenByTheAppMixin:
    """A ModelAdmin mixin: no add, change or delete, whatever the user's permissions."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

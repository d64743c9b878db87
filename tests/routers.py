"""A database router sending the reads of the task manager's models to a read replica.

Enabled in a uWSGI node by ``TM_TEST_SETTINGS={"READ_REPLICA": <name>}``
(tests/settings.py): the alias ``replica`` is a copy of the test database
that is never updated (tests/support/replica.py), as a replica that lags.
"""


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return "replica" if model._meta.app_label == "taskmanager" else "default"

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"

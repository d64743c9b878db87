"""A uWSGI backend whose spool directory can be made "full" by a test (fault injection, issue 13 item 2).

While the file named by the ``TM_TEST_SPOOL_FULL`` setting exists, ``spool()``
fails as ``uwsgi.spool()`` does on a full disk: the claim's spool of a
periodic task's next run, and the recovery's respool, both face it.
"""

import os

from django.conf import settings

from taskmanager.spooler import SpoolerUnavailable
from taskmanager.spooler.uwsgi import UwsgiBackend


class FullSpoolBackend(UwsgiBackend):
    def spool(self, task_id, token, trigger, at=None):
        marker = getattr(settings, "TM_TEST_SPOOL_FULL", "")
        if marker and os.path.exists(marker):
            raise SpoolerUnavailable("The uWSGI spooler refused the task: No space left on device")
        return super().spool(task_id, token, trigger, at)

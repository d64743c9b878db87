"""A project's own ``uwsgidecorators`` spool function, next to the task manager's handler.

Imported by ``TestAppConfig.ready()`` under a uWSGI with a spooler only
(``uwsgidecorators`` raises elsewhere). The tests spool them by writing a
file (``tests/support/spool.py``'s ``put_file``): ``testapp_marker``
(tests/test_unreadable_spool.py) writes "ran" into the file named by
``path``; ``testapp_setenv`` (tests/test_secrets.py) sets the environment
variable ``name`` to ``value`` in the spooler process that runs it, as a
project's code may, then writes "set" into ``path``.
"""

import os
from pathlib import Path

from uwsgidecorators import spool


@spool
def testapp_marker(arguments):
    Path(arguments["path"]).write_text("ran")


@spool
def testapp_setenv(arguments):
    os.environ[arguments["name"]] = arguments["value"]
    Path(arguments["path"]).write_text("set")

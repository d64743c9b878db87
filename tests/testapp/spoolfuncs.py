"""A project's own ``uwsgidecorators`` spool function, next to the task manager's handler.

Imported by ``TestAppConfig.ready()`` under a uWSGI with a spooler only
(``uwsgidecorators`` raises elsewhere). tests/test_unreadable_spool.py spools
it by writing a file: it writes "ran" into the file named by ``path``.
"""

from pathlib import Path

from uwsgidecorators import spool


@spool
def testapp_marker(arguments):
    Path(arguments["path"]).write_text("ran")

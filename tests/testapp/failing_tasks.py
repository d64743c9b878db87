"""A module of ``@task`` functions that fails to import, quoting a URL with its password.

Only a Command row created by a test names it (tests/test_task_functions_adversarial.py):
``collect_commands`` imports an app's ``tasks`` module, never this one.
"""

raise RuntimeError("cannot reach postgres://app:hunter2-import-secret@db/app")

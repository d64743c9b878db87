#!/usr/bin/env python
"""Prepare the demo after ``migrate`` and ``collect_commands``; ``make demo`` runs it.

* creates the superuser ``admin`` with the password in the
  ``DEMO_ADMIN_PASSWORD`` environment variable (``admin`` when it is empty);
  an existing ``admin`` keeps its password unless ``DEMO_ADMIN_PASSWORD``
  names another one (``make demo ADMIN_PASSWORD=...``);
* creates the example tasks that are missing (existing ones, possibly edited
  in the admin, are left alone, so running this again changes nothing);
* checks that the HTTP port is free, and prints where to log in (and where
  to enqueue the demo's ``@task`` functions, or what is missing for them).

A plain script rather than a management command, so that it does not show up
among the commands that tasks can run.
"""

import argparse
import os
import socket
import sys
from pathlib import Path

# (name, (app, command), arguments, category, repetition, note)
EXAMPLE_TASKS = [
    (
        "Refresh the cache",
        ("demoapp", "demo_ok"),
        "--items 5",
        "Examples",
        None,
        "Ends OK: plain lines and a success line.",
    ),
    (
        "Check mailboxes",
        ("demoapp", "demo_warnings"),
        "",
        "Examples",
        None,
        "Ends with WARNINGS: a WARNING-styled line and a logging.warning() record.",
    ),
    (
        "Import records",
        ("demoapp", "demo_errors"),
        "",
        "Examples",
        None,
        "Ends with ERRORS: it finishes normally but wrote ERROR-level lines.",
    ),
    (
        "Send the newsletter",
        ("demoapp", "demo_exception"),
        "",
        "Examples",
        None,
        "Ends FAILED: the command raises an exception; the report shows the traceback.",
    ),
    (
        "Rebuild the search index",
        ("demoapp", "demo_progress"),
        "--steps 40, --delay 1",
        "Examples",
        None,
        "Runs for about 40 seconds, a line per step and a progress bar: open its report "
        "while it runs, or press Stop.",
    ),
    (
        "Try the guide's arguments",
        ("demoapp", "demo_arguments"),
        "-f, --secondarg param1 param2, --thirdarg=pippo, --thirdarg",
        "Examples",
        None,
        "The argument example of the user guide: a flag, an option with two values and an "
        "option with and without a value. The log shows what the command's parser made of them.",
    ),
    (
        "Refresh the cache every 2 minutes",
        ("demoapp", "demo_ok"),
        "--items 2",
        "Periodic",
        ("minute", 2),
        "A periodic task: press Start and it runs now, then every 2 minutes until you press Stop.",
    ),
    (
        "Collect commands",
        ("taskmanager", "collect_commands"),
        "--excludecore, --verbosity 2",
        "Maintenance",
        None,
        "Registers the management commands of the installed apps (run it after adding an app).",
    ),
]


def port_is_free(port: int) -> bool:
    """Return whether 127.0.0.1:port can be bound (with SO_REUSEADDR, as uWSGI binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


DEFAULT_PASSWORD = "admin"


def ensure_admin(password: str | None) -> str | None:
    """Create the superuser ``admin``, or make sure the existing one is an active superuser.

    A new user gets ``password`` (or ``DEFAULT_PASSWORD`` when it is None or
    empty). An existing user's password is set only when ``password`` is
    given and is not already its password: setting it again at every start
    would log out the open admin sessions (Django ties them to the password
    hash) and undo a password changed in the admin.

    Return the password to show, or None when it was left as it was and is
    not known.
    """
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user, created = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
    changed = created or not (user.is_staff and user.is_superuser and user.is_active)
    user.is_staff = user.is_superuser = user.is_active = True
    if created:
        password = password or DEFAULT_PASSWORD
        user.set_password(password)
        print("Created the superuser 'admin'.")
    elif password and not user.check_password(password):
        user.set_password(password)
        changed = True
        print("Set the password of the superuser 'admin'.")
    else:
        print("The superuser 'admin' exists, its password is left as it is.")
    if changed:
        user.save()
    return password


def ensure_tasks() -> None:
    from taskmanager.models import Command, Task, TaskCategory

    for name, (app, command_name), arguments, category, repetition, note in EXAMPLE_TASKS:
        if Task.objects.filter(name=name).exists():
            print("Example task %r exists, left as it is." % name)
            continue
        command = Command.objects.filter(app_name=app, name=command_name).first()
        if command is None:
            sys.exit(
                "The command %s (%s) is not registered: run "
                "'python manage.py collect_commands --excludecore -v2' first." % (command_name, app)
            )
        task = Task(
            name=name,
            command=command,
            arguments=arguments,
            category=TaskCategory.objects.get_or_create(name=category)[0],
            note=note,
        )
        if repetition:
            task.repetition_period, task.repetition_rate = repetition
        task.full_clean()
        task.save()
        print("Created the example task %r." % name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="HTTP port the demo will listen on.")
    args = parser.parse_args(argv)
    password = os.environ.get("DEMO_ADMIN_PASSWORD") or None

    if not port_is_free(args.port):
        sys.exit(
            "Port %d on 127.0.0.1 is already in use (another demo still running?). "
            "Stop it, or pick another port: make demo PORT=8001" % args.port
        )

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demoproject.settings")
    import django

    django.setup()
    shown = ensure_admin(password)
    ensure_tasks()

    url = "http://127.0.0.1:%d/admin/" % args.port
    print()
    print("=" * 72)
    print("  Task manager demo: %s" % url)
    if shown:
        print("  user: admin   password: %s" % shown)
    else:
        print("  user: admin   password: unchanged (set it with: make demo ADMIN_PASSWORD=...)")
    print("  Open 'Tasks', tick a task, choose the Start action (or open it and press Start),")
    print("  then read its report on the task page.")
    from taskmanager.djangotasks import api

    if api.SOURCE:
        print("  django.tasks: open 'Demo > Try django.tasks' and enqueue a @task function;")
        print("  its result appears in 'Task results' within a second.")
    else:
        print("  django.tasks: " + api.MISSING)
    print("  Stop the demo with Ctrl-C.")
    print("=" * 72)
    print()


if __name__ == "__main__":
    main()

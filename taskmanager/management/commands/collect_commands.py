"""Register the management commands and the ``@task`` functions of the installed apps as Command rows.

Functions are found in the apps' ``tasks`` modules (``taskmanager.taskfunctions``)
and always added inactive: a superuser activates each (``docs/task_functions.rst``).
"""

from django.core.management import get_commands
from django.core.management.base import BaseCommand
from django.db import transaction

from ... import audit, policy, taskfunctions
from ...models import Command as CommandModel

# Apps whose commands --excludecore leaves out: Django's own.
CORE_PREFIX = "django."
#: (app, name) of commands that are other names of a collected command: they
#: work on the command line but are not recorded (one Command row per command).
ALIASES = {("taskmanager", "collectcommands")}


def collect(exclude_core: bool = False, dry_run: bool = False) -> dict:
    """Sync Command rows with the commands and functions Django finds; return what changed.

    The result maps "added", "deactivated", "unchanged", "added_inactive" and
    "blocked_active" to lists of (app_name, name); the `ALIASES` are left out
    (a row of one recorded by an earlier version is deactivated). "functions"
    is the :class:`taskmanager.taskfunctions.Discovery`: the ``@task``
    functions are added inactive (kind "function"), always; those of an app
    whose ``tasks`` module failed to import, and every function where the
    django.tasks API is missing, are left as they are (not deactivated).

    Collection never activates what the project did not choose
    (``taskmanager.policy``): a new command is added active only when it
    belongs to one of the project's own apps or ``TASKMANAGER_ALLOWED_COMMANDS``
    names it, and is not blocked (dangerous, or an operator command); others
    are added inactive ("added_inactive" lists them). Existing rows keep their
    ``active`` flag: activating is a superuser's act, so collection only
    deactivates a command that disappeared (never deletes it: tasks may still
    use it). "blocked_active" lists rows that are active although the settings
    block them: reported, not changed, since runs of them are refused anyway.
    """
    found = {
        (app, name)
        for name, app in get_commands().items()
        if not (exclude_core and (app == "django.core" or app.startswith(CORE_PREFIX)))
    } - ALIASES
    discovery = taskfunctions.discover()
    functions = discovery.found
    found |= functions
    result = {"added": [], "added_inactive": [], "deactivated": [], "unchanged": [], "blocked_active": []}
    result["functions"] = discovery
    existing = {(c.app_name, c.name): c for c in CommandModel.objects.all()}
    with transaction.atomic():
        for key in sorted(found - existing.keys()):
            function = key in functions
            active = not function and policy.collected_active(*key)
            result["added"].append(key)
            if not active:
                result["added_inactive"].append(key)
            if not dry_run:
                command = CommandModel.objects.create(
                    app_name=key[0],
                    name=key[1],
                    kind=CommandModel.Kind.FUNCTION if function else CommandModel.Kind.COMMAND,
                    active=active,
                    locked_arguments=not function and policy.locked_by_default(*key),
                )
                if active:
                    # Collection made it runnable: an activation, named as collection's.
                    audit.record(
                        audit.Action.ACTIVATE,
                        command,
                        actor=audit.COLLECTION,
                        changes={"active": [None, True]},
                        message="Added active by collection.",
                    )
        for key, command in sorted(existing.items()):
            if command.is_function and not discovery.checked(command.app_name):
                result["unchanged"].append(key)  # not looked for: nothing is known of it
            elif command.is_carrier:
                # The app's internal command of django.tasks calls: Django's get_commands()
                # skips a module named with a leading underscore; it exists all the same.
                result["unchanged"].append(key)
            elif key in found:
                result["unchanged"].append(key)
                if command.active and policy.blocked(*key):
                    result["blocked_active"].append(key)
            elif command.active:
                result["deactivated"].append(key)
                if not dry_run and CommandModel.objects.filter(pk=command.pk, active=True).update(
                    active=False
                ):
                    audit.record(
                        audit.Action.DEACTIVATE,
                        command,
                        actor=audit.COLLECTION,
                        changes={"active": [True, False]},
                        message="Deactivated by collection: the %s no longer exists." % command.kind,
                    )
    return result


class Command(BaseCommand):
    help = (
        "Register the management commands of the installed apps so that tasks can use them. "
        "Commands that disappeared are deactivated, not deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--excludecore",
            action="store_true",
            help="Leave out the commands of Django's own apps.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change without changing anything."
        )

    def handle(self, *args, **options):
        result = collect(exclude_core=options["excludecore"], dry_run=options["dry_run"])
        verbosity = options["verbosity"]
        discovery = result["functions"]
        functions = discovery.found
        if verbosity >= 2 and discovery.missing:
            self.stdout.write("No @task functions collected: %s." % discovery.missing)
        if verbosity >= 1:
            for app, error in sorted(discovery.failed.items()):
                self.stdout.write(
                    self.style.WARNING(
                        "The tasks module of %s could not be imported, its functions are left as they are: %s"
                        % (app, error)
                    )
                )
        if verbosity >= 2:
            inactive = set(result["added_inactive"])
            for app, name in result["added"]:
                if (app, name) in inactive:
                    self.stdout.write(
                        "Added %s (%s), inactive: %s"
                        % (name, app, policy.inactive_reason(app, name, (app, name) in functions))
                    )
                else:
                    self.stdout.write("Added %s (%s)" % (name, app))
            for app, name in result["deactivated"]:
                if (app, name) in ALIASES:
                    self.stdout.write("Deactivated %s (%s): it is an alias of collect_commands" % (name, app))
                else:
                    self.stdout.write(
                        self.style.WARNING("Deactivated %s (%s): it no longer exists" % (name, app))
                    )
            for app, name in result["unchanged"]:
                self.stdout.write("Unchanged %s (%s)" % (name, app))
        if verbosity >= 1:
            for app, name in result["blocked_active"]:
                self.stdout.write(
                    self.style.WARNING(
                        "%s (%s) is active but blocked by the settings, so its tasks do not run: %s"
                        % (name, app, policy.blocked(app, name))
                    )
                )
            self.stdout.write(
                self.style.SUCCESS(
                    "%d command(s) added (%d of them inactive), %d deactivated, %d unchanged."
                    % (
                        len(result["added"]),
                        len(result["added_inactive"]),
                        len(result["deactivated"]),
                        len(result["unchanged"]),
                    )
                )
            )

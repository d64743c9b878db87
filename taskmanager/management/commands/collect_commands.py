"""Register the management commands of the installed apps as Command rows."""

from django.core.management import get_commands
from django.core.management.base import BaseCommand
from django.db import transaction

from ...conf import app_settings
from ...models import Command as CommandModel

# Apps whose commands --excludecore leaves out: Django's own.
CORE_PREFIX = "django."
#: (app, name) of commands that are other names of a collected command: they
#: work on the command line but are not recorded (one Command row per command).
ALIASES = {("taskmanager", "collectcommands")}


def collect(exclude_core: bool = False, dry_run: bool = False) -> dict:
    """Sync Command rows with the commands Django finds; return what changed.

    The result maps "added", "reactivated", "deactivated" and "unchanged" to
    lists of (app_name, name); the `ALIASES` are left out (a row of one
    recorded by an earlier version is deactivated). New commands listed in
    TASKMANAGER_UNSAFE_COMMANDS are added inactive unless
    TASKMANAGER_ALLOW_UNSAFE_COMMANDS is True. A command that disappeared is
    deactivated, never deleted (tasks may still use it). "unsafe_active"
    lists the unsafe commands that are active although the setting does not
    allow them (someone activated them by hand): they are reported, not
    changed, since that was a person's explicit choice.
    """
    found = {
        (app, name)
        for name, app in get_commands().items()
        if not (exclude_core and (app == "django.core" or app.startswith(CORE_PREFIX)))
    } - ALIASES
    unsafe = set(app_settings.UNSAFE_COMMANDS)
    allow_unsafe = app_settings.ALLOW_UNSAFE_COMMANDS
    result = {"added": [], "deactivated": [], "unchanged": [], "unsafe_active": []}
    existing = {(c.app_name, c.name): c for c in CommandModel.objects.all()}
    with transaction.atomic():
        for key in sorted(found - existing.keys()):
            active = allow_unsafe or key[1] not in unsafe
            result["added"].append(key)
            if not dry_run:
                CommandModel.objects.create(app_name=key[0], name=key[1], active=active)
        for key, command in sorted(existing.items()):
            if key in found:
                result["unchanged"].append(key)
                if command.active and not allow_unsafe and key[1] in unsafe:
                    result["unsafe_active"].append(key)
            elif command.active:
                result["deactivated"].append(key)
                if not dry_run:
                    CommandModel.objects.filter(pk=command.pk).update(active=False)
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
        if verbosity >= 2:
            for app, name in result["added"]:
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
            for app, name in result["unsafe_active"]:
                self.stdout.write(
                    self.style.WARNING(
                        "%s (%s) is active although it is listed as unsafe (TASKMANAGER_UNSAFE_COMMANDS): "
                        "deactivate it in the admin unless tasks really need it." % (name, app)
                    )
                )
            self.stdout.write(
                self.style.SUCCESS(
                    "%d command(s) added, %d deactivated, %d unchanged."
                    % (len(result["added"]), len(result["deactivated"]), len(result["unchanged"]))
                )
            )

"""Who may run what: the rules every Start, Stop, Run now, form and claim apply.

A management command can do anything its code can do with any argument its
parser accepts, as the user the spooler runs as. So a Run button is worth
exactly the commands behind it, and the rules are about which commands are
behind it (``docs/security.rst`` explains them to users):

* **Nothing becomes runnable by accident.** ``collect_commands`` adds the
  commands of the project's own apps (code outside site-packages) active;
  those of Django and of third-party apps inactive unless
  ``TASKMANAGER_ALLOWED_COMMANDS`` names them (:func:`collected_active`).
* **Some commands are blocked whatever the admin says** (:func:`blocked`):
  ``respool_tasks`` (an operator command), and the dangerous ones of
  ``TASKMANAGER_DANGEROUS_COMMANDS`` (shells, dumps, settings printers, code
  generators...) unless ``TASKMANAGER_ALLOWED_DANGEROUS_COMMANDS`` names them
  too.
* **A ``@task`` function is a command of another kind** (``Command.kind``):
  collected always inactive, then under the same rules; its arguments are
  JSON (:mod:`.callargs`), compared as calls with approved strings.
* **Activation and run rights are superuser acts** (the Command admin);
  anyone who may change commands may only switch them off.
* **Every run is checked where it happens**: the buttons and actions
  (:func:`run_refusal` with the user pressing), and the spooler's claim
  (with the user who started the run), because uWSGI serves without running
  system checks and rows in the database may predate these rules.
* **Who may see a command reads its reports** (:func:`may_read`,
  :func:`readable_reports`): ``view_report`` narrowed by the command's run
  rights, wherever a report, its log or a run's progress is served.

Each ``*_refusal`` function returns ``None`` when allowed, else a message a
person can act on; none raises.
"""

from __future__ import annotations

import site
import sys
import sysconfig
from functools import cache
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext as _

from . import arguments, callargs
from .conf import app_settings
from .models import Command, DjangoTaskResult, Report

RUN_PERMISSION = "taskmanager.run_task"
#: Needed, with the right to run its command, to change what a task runs (its arguments too).
CHANGE_PERMISSION = "taskmanager.change_task"
#: The app itself: its own commands are neither the project's nor third-party ones.
SELF = "taskmanager"
#: (app, command) never runnable as a task: respool_tasks re-spools and adopts
#: every pending run of a node, an operator's act after a crash or a move.
NEVER_RUNNABLE = {(SELF, "respool_tasks")}
#: (app, command) of this app collected active: the user guide creates a task
#: of collect_commands, which is harmless because collection never activates.
SELF_ALLOWED = {(SELF, "collect_commands")}
#: Directory names that hold installed (not the project's own) packages.
INSTALLED_DIR_NAMES = {"site-packages", "dist-packages", "__pypackages__", ".pex"}


# -- apps and settings --------------------------------------------------------------


def _installed_roots() -> list[Path]:
    """Directories of installed packages and of the standard library."""
    roots = set()
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        if paths.get(key):
            roots.add(paths[key])
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - some virtualenv versions' site module
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        roots.add(user_site)
    # The environments themselves (a virtualenv inside the project).
    roots.update({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return [Path(root).resolve() for root in roots]


@cache
def is_project_app(app_name: str) -> bool:
    """Whether ``app_name`` (an AppConfig's ``name``) is one of the project's own apps.

    Its code must live inside the project (``settings.BASE_DIR``, when the
    project defines it, as ``startproject`` does) and outside anything
    installed: a ``site-packages``/``dist-packages``/``__pypackages__``
    directory, the standard library, the Python environment (a virtualenv
    inside the project). So packages installed with ``pip --target``, in a
    Lambda layer or by pex, which live elsewhere, are not the project's.
    Django's own apps (and ``django.core``) and this app never are.
    """
    if app_name == "django" or app_name.startswith("django.") or app_name == SELF:
        return False
    config = next((c for c in apps.get_app_configs() if c.name == app_name), None)
    if config is None or not config.path:
        return False
    path = Path(config.path).resolve()
    if INSTALLED_DIR_NAMES & set(path.parts):
        return False
    if any(_within(path, root) for root in _installed_roots()):
        return False
    base_dir = getattr(settings, "BASE_DIR", None)
    return base_dir is None or _within(path, Path(base_dir).resolve())


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _labels(app_name: str) -> set[str]:
    """The names an app goes by in the settings: its dotted name and its label."""
    names = {app_name}
    config = next((c for c in apps.get_app_configs() if c.name == app_name), None)
    if config is not None:
        names.add(config.label)
    return names


def _listed(entries, app_name: str, name: str, *, whole_apps: bool) -> bool:
    """Whether ``entries`` name the command: ``app.command``, or (``whole_apps``) the app itself.

    Without ``whole_apps`` a bare command name matches it in every app.
    """
    wanted = set(entries or ())
    labels = _labels(app_name)
    if any("%s.%s" % (label, name) in wanted for label in labels):
        return True
    if whole_apps:
        return bool(labels & wanted)
    return name in wanted


def dangerous_names() -> list[str]:
    return list(app_settings.DANGEROUS_COMMANDS or ()) + list(app_settings.UNSAFE_COMMANDS or ())


def is_dangerous(app_name: str, name: str) -> bool:
    return _listed(dangerous_names(), app_name, name, whole_apps=False)


def blocked(app_name: str, name: str) -> str | None:
    """Why the settings block this command whatever its ``active`` flag says, or None."""
    if (app_name, name) in NEVER_RUNNABLE:
        return _("%(command)s is an operator command: it never runs as a task.") % {"command": name}
    if (app_name, name) == (SELF, DjangoTaskResult.CARRIER_COMMAND):
        # Its tasks carry the runs of django.tasks functions (taskmanager.djangotasks),
        # which the code enqueues; a spooler runs them without this check.
        return _(
            "%(command)s runs the django.tasks functions the code enqueues: it never runs as a task "
            "of its own."
        ) % {"command": name}
    if is_dangerous(app_name, name) and not _listed(
        app_settings.ALLOWED_DANGEROUS_COMMANDS, app_name, name, whole_apps=False
    ):
        return _(
            "%(command)s is a dangerous command (TASKMANAGER_DANGEROUS_COMMANDS): it only runs as a "
            "task when TASKMANAGER_ALLOWED_DANGEROUS_COMMANDS names it."
        ) % {"command": name}
    return None


def allowed_by_settings(app_name: str, name: str) -> bool:
    """Whether the project chose this command: a project app's, this app's collector, or listed."""
    return (
        is_project_app(app_name)
        or (app_name, name) in SELF_ALLOWED
        or _listed(app_settings.ALLOWED_COMMANDS, app_name, name, whole_apps=True)
    )


def inactive_reason(app_name: str, name: str, function: bool = False) -> str:
    """Why collection adds this command (or ``function``) inactive (the Commands list, ``collect_commands -v2``)."""
    reason = blocked(app_name, name)
    if reason:
        return reason
    if function:
        return _(
            "A @task function: collection always adds functions inactive, a superuser can activate it "
            "here. Inactive only for tasks made of it in the admin: the code's .enqueue() calls run."
        )
    return _(
        "Not a command of the project's own apps: a superuser can activate it here, or "
        "TASKMANAGER_ALLOWED_COMMANDS can name it."
    )


def collected_active(app_name: str, name: str) -> bool:
    """Whether collect_commands adds this new command active."""
    return blocked(app_name, name) is None and allowed_by_settings(app_name, name)


def locked_by_default(app_name: str, name: str) -> bool:
    """Whether a new command gets locked arguments: Django's own, and the dangerous ones."""
    return app_name == "django" or app_name.startswith("django.") or is_dangerous(app_name, name)


# -- commands and users --------------------------------------------------------------


def command_refusal(command) -> str | None:
    """Why no task of ``command`` may run now (blocked or inactive), or None."""
    reason = blocked(command.app_name, command.name)
    if reason:
        return reason
    if not command.active:
        return _("The command %(command)s is not active: a superuser can activate it in Commands.") % {
            "command": command.name
        }
    return None


def user_refusal(user, command) -> str | None:
    """Why ``user`` may not run (start, stop, change) tasks of ``command``, or None.

    Superusers always may. Others need ``taskmanager.run_task`` and, when the
    command names groups, one of them; a command for superusers only refuses
    them.
    """
    if user is None or not user.is_active:
        return _("This user may not run tasks.")
    if user.is_superuser:
        return None
    if not user.has_perm(RUN_PERMISSION):
        return _("You do not have the permission to run tasks.")
    if command.run_by == Command.RunBy.SUPERUSERS:
        return _("Only superusers may run tasks of the command %(command)s.") % {"command": command.name}
    if command.run_by == Command.RunBy.GROUPS:
        if not command.groups.filter(pk__in=user.groups.values("pk")).exists():
            names = ", ".join(command.groups.order_by("name").values_list("name", flat=True))
            return _(
                "Only the members of the groups chosen for the command %(command)s may run its tasks "
                "(%(groups)s), and superusers."
            ) % {"command": command.name, "groups": names or _("no group chosen")}
    return None


def other_arguments_refusal(user, task) -> str | None:
    """Why ``user`` may not run ``task`` once with arguments of their own (Run now with other arguments), or None.

    Choosing the arguments of a run is changing what it runs: it needs the
    rights of an edit of the task's arguments, ``change_task`` and the right
    to run its command. The arguments themselves are checked as a saved
    task's are (:func:`arguments_refusal`: a locked command takes only its
    approved strings).
    """
    reason = user_refusal(user, task.command)
    if reason:
        return reason
    if not user.is_superuser and not user.has_perm(CHANGE_PERMISSION):
        return _("You may not change tasks, so you may not run one with other arguments.")
    return None


def approved_argvs(command) -> list[tuple[str, list[str]]]:
    """The approved argument strings of ``command`` with their argv (unsplittable ones left out)."""
    found = []
    for text in command.approved_arguments.values_list("arguments", flat=True):
        try:
            found.append((text, callargs.argv_of(command, text)))
        except arguments.ArgumentsError:
            continue
    return found


def arguments_refusal(command, argv: list[str]) -> str | None:
    """Why ``argv`` may not run with ``command`` (its arguments are locked), or None.

    The message lists the approved strings: whoever may run the command may
    use them, and may not open the command's page to look them up.
    """
    if not command.locked_arguments:
        return None
    approved = approved_argvs(command)
    if any(allowed == argv for _text, allowed in approved):
        return None
    if not approved:
        return _(
            "The arguments of %(command)s are locked and no argument string is approved yet: ask a "
            "superuser to approve one on the command's page."
        ) % {"command": command.name}
    return _(
        "The arguments of %(command)s are locked: use one of the approved argument strings (%(approved)s), "
        "or ask a superuser to approve another on the command's page."
    ) % {
        "command": command.name,
        "approved": "; ".join(repr(text) if text else _("no arguments") for text, _argv in approved),
    }


def run_refusal(task, user=None, *, check_user: bool = True, argv: list[str] | None = None) -> str | None:
    """Why ``task`` may not run now for ``user``, or None.

    ``user`` None with ``check_user`` False is the project's own code (a shell,
    ``respool_tasks``): only the command and its arguments are checked.
    """
    return RunChecks(user, check_user=check_user).refusal(task, argv)


class RunChecks:
    """:func:`run_refusal` for one user and many tasks (the list's Start action).

    The rules are the same, in the same order; what depends only on the
    command (blocked, active, the user's rights on it: a query for a command
    of some groups) is decided once per command, and a locked command's
    approved arguments are read once per command and argument list.
    """

    def __init__(self, user=None, *, check_user: bool = True):
        self.user, self.check_user = user, check_user
        self._commands: dict = {}
        self._arguments: dict = {}

    def refusal(self, task, argv: list[str] | None = None) -> str | None:
        command = task.command
        if command.pk not in self._commands:
            reason = command_refusal(command)
            if reason is None and self.check_user:
                reason = user_refusal(self.user, command)
            self._commands[command.pk] = reason
        if self._commands[command.pk]:
            return self._commands[command.pk]
        if argv is None:  # the claim passes the argv it parsed already (one parse per run)
            try:
                argv = callargs.argv_of(command, task.arguments)
            except arguments.ArgumentsError as exc:
                return str(exc)
        key = (command.pk, tuple(argv))
        if key not in self._arguments:
            self._arguments[key] = arguments_refusal(command, argv)
        return self._arguments[key]


def claim_refusal(task, trigger: str, argv: list[str] | None = None) -> str | None:
    """The spooler's check when it claims a run: ``run_refusal`` with the run's starter, as they are now.

    A "run now" run is checked with the rights of who pressed Run now; every
    other run (Start, the schedule) with those of who started the task. A
    Run now with other arguments is checked with its own arguments, and its
    author must still be allowed to choose them (:func:`other_arguments_refusal`). A
    run whose starter was deleted is refused: the username kept on the task
    tells it from a run started by the project's own code (no user at all).
    """
    if trigger == Report.Trigger.RUN_NOW:
        user_id, name = task.run_now_by_id, task.run_now_by_name
        user = task.run_now_by if user_id else None
    else:
        user_id, name = task.started_by_id, task.started_by_name
        user = task.started_by if user_id else None
    if user is None and name:
        return _("%(user)s, who started this run, no longer exists.") % {"user": name}
    other = trigger == Report.Trigger.RUN_NOW and task.run_now_arguments is not None
    if argv is None and other:  # one-off arguments: checked instead of the task's
        try:
            argv = callargs.argv_of(task.command, task.run_now_arguments)
        except arguments.ArgumentsError as exc:
            return str(exc)
    refusal = run_refusal(task, user, check_user=user is not None, argv=argv)
    if refusal is None and other and user is not None:
        refusal = other_arguments_refusal(user, task)
    if refusal is None and trigger != Report.Trigger.RUN_NOW:
        refusal = _definer_refusal(task, user_id)
    return refusal


def _definer_refusal(task, starter_id) -> str | None:
    """Why the person who changed the definition after its Start may not run it now, or None.

    An edit re-queues a pending run under its starter, who did not see the
    new definition: the run is checked with the rights of its author too.
    """
    definer = task.definition_changed_by
    if task.started_version is None or task.version == task.started_version:
        return None
    if definer is None or definer.pk == starter_id:
        return None
    reason = user_refusal(definer, task.command)
    if reason is None:
        return None
    return _("%(user)s, who changed what this task runs after it was started, may not run it: %(reason)s") % {
        "user": definer.get_username(),
        "reason": reason,
    }


def _within_run_rights(commands, user):
    """``commands`` left to a user who is not a superuser by their run rights (groups, superusers only)."""
    in_groups = Command.objects.filter(groups__in=user.groups.all()).values("pk")
    return commands.exclude(run_by=Command.RunBy.SUPERUSERS).exclude(
        Q(run_by=Command.RunBy.GROUPS) & ~Q(pk__in=in_groups)
    )


def runnable_commands(user):
    """The commands ``user`` may choose for a task: active, not blocked, within the user's rights."""
    if user is None or not user.is_active:
        return Command.objects.none()
    if not user.is_superuser and not user.has_perm(RUN_PERMISSION):
        return Command.objects.none()
    candidates = Command.objects.filter(active=True)
    if not user.is_superuser:
        candidates = _within_run_rights(candidates, user)
    keep = [
        pk for pk, app, name in candidates.values_list("pk", "app_name", "name") if not blocked(app, name)
    ]
    return Command.objects.filter(pk__in=keep)


# -- reading what a run printed -------------------------------------------------------
#
# One rule: whoever may see a command may read its reports (page, log, follow,
# download, the tail and the progress on the task's pages). Seeing a command
# is Django's view_report (or change_report) narrowed by the command's run
# rights: anyone with view_report for "anyone who may run tasks", the members
# of its groups for "superusers and the groups below", superusers only for
# "superusers only". run_task is not needed (it is the right to act, and
# view-only users read logs), nor is the command active or unblocked: a
# command switched off keeps its readers. See docs/security.rst, "Read rights".

VIEW_REPORT_PERMISSIONS = ("taskmanager.view_report", "taskmanager.change_report")


def _may_view_reports(user) -> bool:
    if user is None or not user.is_active:
        return False
    return user.is_superuser or any(user.has_perm(perm) for perm in VIEW_REPORT_PERMISSIONS)


def may_read(user, command) -> bool:
    """Whether ``user`` may read the reports of ``command``'s tasks (the one rule, see above)."""
    if not _may_view_reports(user):
        return False
    if user.is_superuser or command.run_by == Command.RunBy.PERMISSION:
        return True
    if command.run_by == Command.RunBy.GROUPS:
        return command.groups.filter(pk__in=user.groups.values("pk")).exists()
    return False


def readable_commands(user):
    """The commands whose reports ``user`` may read (:func:`may_read` as a queryset)."""
    if not _may_view_reports(user):
        return Command.objects.none()
    if user.is_superuser:
        return Command.objects.all()
    return _within_run_rights(Command.objects.all(), user)


def readable_reports(reports, user):
    """``reports`` (a Report queryset) without those ``user`` may not read."""
    if not _may_view_reports(user):
        return reports.none()
    if user.is_superuser:
        return reports
    return reports.filter(task__command__in=readable_commands(user))

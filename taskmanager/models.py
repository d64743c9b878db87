"""Models: Command, TaskCategory, Task, Report and the report's LogLine rows.

The task's ``status`` and ``run_token`` are the state machine described in
``docs/states.rst``: every change to them is one conditional UPDATE checked by
its row count, never a read-then-write, so concurrent web and spooler
processes cannot both win.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Value, When
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import callargs, datetimes, dbclock, logcapture, schedule, spoolfiles
from .conf import app_settings


class EndKind(models.TextChoices):
    """How a run ended (issue 16): the structured side of the report's free-text end reason.

    A run's result says whether it went well (``Task.Result``); its end kind
    says how it ended, so that a run a user stopped does not read as a crash.
    Every kind but ``COMPLETED`` and ``EXIT_CODE`` 0 comes with a FAILED result.
    """

    COMPLETED = "completed", _("completed")
    STOPPED = "stopped", _("stopped by a user")
    TIMED_OUT = "timed out", _("timed out")
    INTERRUPTED = "interrupted", _("interrupted")
    CRASHED = "crashed", _("crashed")
    EXIT_CODE = "exit code", _("exit code")
    FENCED = "fenced", _("heartbeat lost")
    NOT_RUN = "not run", _("not run")


def end_kind_text(kind: str, exit_code=None) -> str:
    """Return the translated words for an end kind ("exit code 3" with its code); "" for none."""
    if kind == EndKind.EXIT_CODE and exit_code is not None:
        return gettext("exit code %(code)d") % {"code": exit_code}
    try:
        return str(EndKind(kind).label)
    except ValueError:
        return kind


def new_token() -> str:
    """Return a fresh run token (32 hex characters)."""
    return uuid.uuid4().hex


class Command(models.Model):
    """A management command, or a ``@task`` function, collected from an installed app.

    ``kind`` tells them apart: a command's ``name`` is its name, a function's
    is its dotted path (``Task.module_path``, ``app.tasks.function``: never a
    command's, which has no dot), and its tasks' arguments are JSON
    (:mod:`taskmanager.callargs`). Who may run it is decided here and in the settings (``taskmanager.policy``,
    ``docs/security.rst``): ``active`` and the run rights are set by superusers
    (or by the settings at collection); anyone may only switch a command off.
    """

    class RunBy(models.TextChoices):
        PERMISSION = "permission", _("anyone who may run tasks")
        GROUPS = "groups", _("superusers and the groups below")
        SUPERUSERS = "superusers", _("superusers only")

    class Kind(models.TextChoices):
        COMMAND = callargs.COMMAND, _("management command")
        FUNCTION = callargs.FUNCTION, _("task function")

    name = models.CharField(_("name"), max_length=300)
    app_name = models.CharField(_("app name"), max_length=200)
    kind = models.CharField(
        _("kind"), max_length=10, choices=Kind.choices, default=Kind.COMMAND, editable=False
    )
    active = models.BooleanField(_("active"), default=True)
    run_by = models.CharField(
        _("who may run it"),
        max_length=10,
        choices=RunBy.choices,
        default=RunBy.PERMISSION,
        help_text=_(
            "Who may start, stop, run and change tasks of this command. Everyone also needs the "
            "permission to run tasks; superusers always may."
        ),
    )
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        verbose_name=_("groups"),
        help_text=_('With "superusers and the groups below": the groups whose members may run it.'),
    )
    locked_arguments = models.BooleanField(
        _("locked arguments"),
        default=False,
        help_text=_("Tasks of this command may only use the argument strings approved below by a superuser."),
    )

    class Meta:
        verbose_name = _("command")
        verbose_name_plural = _("commands")
        ordering = ["app_name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["app_name", "name"], name="taskmanager_command_unique"),
        ]

    def __str__(self):
        if self.kind == Command.Kind.FUNCTION:
            return f"{self.name}() ({self.app_name})"
        return f"{self.name} ({self.app_name})"

    @property
    def is_function(self) -> bool:
        return self.kind == Command.Kind.FUNCTION

    @property
    def is_carrier(self) -> bool:
        """Whether this is the internal command that runs django.tasks calls (see :func:`carrier_tasks`)."""
        return (self.app_name, self.name) == ("taskmanager", DjangoTaskResult.CARRIER_COMMAND)


class ApprovedArguments(models.Model):
    """An argument string a superuser approved for a command with locked arguments.

    Compared after splitting (``callargs.argv_of``), so spacing and
    quoting that give the same argv match (a function's: the same call).
    """

    command = models.ForeignKey(
        Command, on_delete=models.CASCADE, related_name="approved_arguments", verbose_name=_("command")
    )
    arguments = models.TextField(_("arguments"), blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(_("approved at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("approved arguments")
        verbose_name_plural = _("approved arguments")
        ordering = ["command", "pk"]

    def __str__(self):
        return self.arguments


class TaskCategory(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("task category")
        verbose_name_plural = _("task categories")
        ordering = ["name"]

    def __str__(self):
        return self.name


def carrier_tasks(via: str = "") -> models.Q:
    """The carrier tasks of django.tasks functions, as a filter on Task (``via``: ``"tasks__"`` from a Command or a TaskCategory).

    A carrier task (one per function path, named ``CARRIER_PREFIX`` and the
    path) holds the runs of a function, made by the spoolers; its command is
    the internal ``CARRIER_COMMAND``. Nobody starts it: the admin leaves it out
    of every list and count of tasks (the Task list, a command's and a
    category's tasks). :attr:`Task.is_carrier` says it of one task.
    """
    return models.Q(
        **{via + "command__app_name": "taskmanager", via + "command__name": DjangoTaskResult.CARRIER_COMMAND}
    )


class TaskQuerySet(models.QuerySet):
    def offered(self):
        """The tasks people start: all but the carrier tasks of django.tasks functions (:func:`carrier_tasks`)."""
        return self.exclude(carrier_tasks())

    def pending(self):
        """Tasks waiting in a spool file for their next run (status in ``Task.PENDING``)."""
        return self.filter(status__in=Task.PENDING)

    def running(self):
        return self.filter(status=Task.Status.STARTED)

    def overdue(self, now=None):
        """Pending tasks whose next execution is more than ``OVERDUE_GRACE`` seconds late (none if it is 0)."""
        grace = app_settings.OVERDUE_GRACE
        if not grace:
            return self.none()
        limit = (now or dbclock.DbNow()) - timedelta(seconds=float(grace))
        return self.pending().filter(next_datetime__lt=limit)

    def queued(self):
        """Tasks with a run in a spool entry: pending ones, and running ones whose chain has a next run."""
        return self.filter(
            models.Q(status__in=Task.PENDING)
            | (models.Q(status=Task.Status.STARTED) & ~models.Q(run_token=""))
        )

    def end_run(self, **fields) -> int:
        """End the run of these tasks on the task's side, in one UPDATE; return the row count.

        The UPDATE sets :meth:`end_values`.
        """
        return self.update(**self.end_values(**fields))

    @staticmethod
    def end_values(**fields) -> dict:
        """The SET of the UPDATE that ends a task's run: ``{field: value or expression}``, in order.

        The status becomes :meth:`Task.end_status` and ``resume_status`` is
        cleared; ``run_now_at`` becomes now (a "run now" deferred behind the
        run waits for its entry from this moment, ``recovery.runnow``);
        ``fields`` (the last result, counters...) are set in the same
        UPDATE. The status comes first: MySQL/MariaDB evaluate SET assignments
        left to right, each seeing the ones before it, so it must read
        ``resume_status`` before that is cleared.
        """
        return {"status": Task.end_status(), "resume_status": "", "run_now_at": dbclock.DbNow(), **fields}


class Task(models.Model):
    class Status(models.TextChoices):
        IDLE = "IDLE", _("Idle")
        STARTED = "STARTED", _("Started")
        SCHEDULED = "SCHEDULED", _("Scheduled")
        SPOOLED = "SPOOLED", _("Spooled")

    class Result(models.TextChoices):
        OK = "OK", _("OK")
        WARNINGS = "WARNINGS", _("Warnings")
        ERRORS = "ERRORS", _("Errors")
        FAILED = "FAILED", _("Failed")

    class Period(models.TextChoices):
        MINUTE = "minute", _("minute")
        HOUR = "hour", _("hour")
        DAY = "day", _("day")
        MONTH = "month", _("month")

    #: The statuses of a task waiting in a spool entry for its next run.
    PENDING = (Status.SCHEDULED, Status.SPOOLED)

    # Definition
    name = models.CharField(_("name"), max_length=200, unique=True)
    command = models.ForeignKey(
        Command, on_delete=models.PROTECT, related_name="tasks", verbose_name=_("command")
    )
    arguments = models.TextField(
        _("arguments"),
        blank=True,
        help_text=_(
            "Separate arguments with commas and the values of one argument with spaces, "
            "e.g. <code>-f, --names alice bob, --mode=fast</code>. Quote values that contain "
            "spaces or commas. For a function: JSON, "
            '<code>{"args": [1, "x"], "kwargs": {"name": "alice"}}</code> (both optional).'
        ),
    )
    category = models.ForeignKey(
        TaskCategory,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
        verbose_name=_("category"),
    )
    note = models.TextField(_("note"), blank=True)
    timeout = models.PositiveIntegerField(
        _("timeout"),
        null=True,
        blank=True,
        help_text=_("Maximum duration of a run in seconds; empty uses the project default."),
    )
    notify = models.BooleanField(
        _("send notifications"),
        default=True,
        help_text=_(
            "Send the project's failure and recovery notices (e-mail, Slack, webhook) for this task."
        ),
    )

    queue = models.CharField(
        _("queue"),
        max_length=100,
        blank=True,
        default="",
        help_text=_(
            "Only spooler nodes serving this queue run the task (their TASKMANAGER_SERVE_QUEUES); "
            "empty means the default queue."
        ),
    )

    # Scheduling
    scheduling = models.DateTimeField(
        _("scheduling"),
        null=True,
        blank=True,
        help_text=_("When the task runs first; empty means as soon as it is started."),
    )
    repetition_period = models.CharField(
        _("repetition period"), max_length=10, choices=Period.choices, blank=True
    )
    repetition_rate = models.PositiveIntegerField(_("repetition rate"), null=True, blank=True)

    # Last execution (written by the runner only)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.IDLE, editable=False
    )
    run_token = models.CharField(max_length=32, blank=True, editable=False)
    spooler_id = models.CharField(_("spooled at"), max_length=500, blank=True, editable=False)
    spooler_node = models.CharField(_("spooler node"), max_length=500, blank=True, editable=False)
    # The payload version of the pending run queued in this row (issue 15, rolling
    # deploys): spoolfiles.PAYLOAD_VERSION of the code that queued it. A node
    # leaves a row of a newer version to a node that knows it.
    payload_version = models.PositiveSmallIntegerField(default=1, editable=False)
    last_datetime = models.DateTimeField(_("last execution"), null=True, blank=True, editable=False)
    last_result = models.CharField(
        _("last result"), max_length=10, choices=Result.choices, blank=True, editable=False
    )
    # How the last run ended (EndKind), so the list tells a stopped run from a crash.
    last_end_kind = models.CharField(
        _("last end"), max_length=12, choices=EndKind.choices, blank=True, editable=False
    )
    errors = models.PositiveIntegerField(_("errors"), default=0, editable=False)
    warnings = models.PositiveIntegerField(_("warnings"), default=0, editable=False)
    next_datetime = models.DateTimeField(_("next execution"), null=True, blank=True, editable=False)
    # Copied from the last finished run so that the task list needs no join.
    last_duration = models.DurationField(_("duration of last run"), null=True, blank=True, editable=False)
    # A failure notice was sent and no "recovered" notice since (notifications.py).
    failure_notified = models.BooleanField(default=False, editable=False)
    # When an "overdue" notice was sent for the slot of next_datetime; cleared
    # (with a "recovered" notice) when the task runs again (recovery/overdue.py).
    overdue_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Status to return to when a "run now" run ends (the periodic chain goes on).
    resume_status = models.CharField(max_length=10, blank=True, editable=False)
    run_now_token = models.CharField(max_length=32, blank=True, editable=False)
    # Since when the queued "run now" waits for its spool entry to run (the
    # database's clock): set with the token, and again when the run it was
    # deferred behind ends. The periodic recovery respools a token older than
    # a few seconds with no entry (recovery/runnow.py); another node takes it
    # once it is older than the take-over grace (recovery/takeover.py).
    run_now_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The one-off arguments of the queued "run now" (Run now with other
    # arguments), written with its token, cleared with it (claim, Stop); None: the run
    # uses the task's own arguments ("" is a run with no arguments). The
    # task's own ``arguments`` never change for it.
    run_now_arguments = models.TextField(null=True, blank=True, editable=False)  # noqa: DJ001 - None vs ""
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("started by"),
    )
    # Who queued the pending "run now" (its run is checked with their rights
    # and reported in their name; the schedule stays ``started_by``'s).
    run_now_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("run now by"),
    )
    # The usernames of the two above, kept when the user is deleted: a run
    # started by a person who no longer exists is refused at the claim, not
    # taken for one started by the project's code (policy.claim_refusal).
    started_by_name = models.CharField(max_length=150, blank=True, editable=False)
    run_now_by_name = models.CharField(max_length=150, blank=True, editable=False)
    # The definition's version: raised by every change of what the task runs
    # (forms.RUN_FIELDS). The task page's buttons carry the version they
    # showed, and a Start of another version is refused (actions.start).
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)
    definition_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("definition changed by"),
    )
    definition_changed_at = models.DateTimeField(
        _("definition changed at"), null=True, blank=True, editable=False
    )
    # The definition version the starter's Start committed to. An edit after
    # it re-queues the pending run under the same starter ("defined by" the
    # editor, see actions.reschedule), and the claim then checks the rights
    # of both (policy.claim_refusal).
    started_version = models.PositiveIntegerField(null=True, blank=True, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["name"]
        permissions = [("run_task", _("Can start, stop and run tasks"))]
        indexes = [
            # The take-over pass of every spooler node (recovery/takeover.py);
            # a filter on the status alone uses it too (its leading column).
            models.Index(fields=["status", "next_datetime"], name="taskmanager_task_due"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_carrier(self) -> bool:
        """Whether this task carries the runs of a django.tasks function (:func:`carrier_tasks`, of one task)."""
        return self.command.is_carrier

    @property
    def is_periodic(self) -> bool:
        return schedule.is_periodic(self.repetition_period or None, self.repetition_rate)

    @property
    def has_queued_run(self) -> bool:
        """Whether a run of the task waits in a spool entry (see :meth:`TaskQuerySet.queued`)."""
        return self.status in Task.PENDING or (self.status == Task.Status.STARTED and bool(self.run_token))

    def arguments_for(self, trigger: str) -> str:
        """The argument string a run of ``trigger`` uses: a queued Run now's one-off arguments, else the task's."""
        if trigger == Report.Trigger.RUN_NOW and self.run_now_arguments is not None:
            return self.run_now_arguments
        return self.arguments

    @staticmethod
    def end_status():
        """Return the expression of a task's status when its run ends (one UPDATE).

        No current token (a one-shot run, or the task was stopped): IDLE. A
        "run now" run: back to the status it interrupted. Else the next run of a
        periodic task is spooled: SPOOLED. In the UPDATE, put ``status`` before
        ``resume_status = ""``: MySQL/MariaDB evaluate SET assignments left to
        right, each seeing the ones before it (see :meth:`TaskQuerySet.end_run`).
        """
        return Case(
            When(run_token="", then=Value(Task.Status.IDLE)),
            When(resume_status="", then=Value(Task.Status.SPOOLED)),
            default=F("resume_status"),
        )


class ReportQuerySet(models.QuerySet):
    def running(self):
        return self.filter(finished_datetime__isnull=True)

    def finished(self):
        return self.filter(finished_datetime__isnull=False)


class Report(models.Model):
    """One run of a task: created when the run is claimed, completed when it ends."""

    EndKind = EndKind

    class Trigger(models.TextChoices):
        START = "start", _("start")
        SCHEDULE = "schedule", _("schedule")
        RUN_NOW = "run now", _("run now")
        RECOVERY = "recovery", _("recovery")
        # A django.tasks function enqueued by the project's code (DjangoTaskResult).
        ENQUEUE = "enqueue", _("enqueued")

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="reports", verbose_name=_("task"))
    result = models.CharField(_("result"), max_length=10, choices=Task.Result.choices, blank=True)
    invocation_datetime = models.DateTimeField(_("invocation datetime"), default=timezone.now)
    finished_datetime = models.DateTimeField(_("finished datetime"), null=True, blank=True)
    end_reason = models.CharField(_("end reason"), max_length=200, blank=True)
    # How the run ended (EndKind; "" while it runs), and the command's exit
    # code for EXIT_CODE (None otherwise). end_reason keeps the details.
    end_kind = models.CharField(_("end"), max_length=12, choices=EndKind.choices, blank=True)
    exit_code = models.SmallIntegerField(_("exit code"), null=True, blank=True)
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    # The starter's username, kept when the user is deleted (the task's
    # started_by_name, or run_now_by_name for a "run now" run).
    user_name = models.CharField(_("started by (username)"), max_length=150, blank=True)
    # Who last defined what this run ran, and the definition's version (copied
    # from the task at the claim): an edit re-queues a run under its starter,
    # so the starter and the author may differ.
    defined_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("defined by"),
    )
    defined_by_name = models.CharField(_("defined by (username)"), max_length=150, blank=True)
    definition_version = models.PositiveIntegerField(_("definition version"), null=True, blank=True)
    command_line = models.TextField(_("command line"), blank=True)
    # The one-off arguments of a "run now" with other arguments (the task's
    # run_now_arguments at the claim, redacted like the command line); None:
    # the run used the task's own arguments.
    arguments_override = models.TextField(_("one-off arguments"), null=True, blank=True)  # noqa: DJ001 - None vs ""
    host = models.CharField(_("host"), max_length=255, blank=True)
    pid = models.IntegerField(_("PID"), null=True, blank=True)
    # Supervisor (spooler process) identity, for recovery after a crash. Start
    # times are Linux clock ticks since boot (/proc/<pid>/stat field 22): with
    # the pid they tell a live process from a later one that reused its pid.
    supervisor_pid = models.IntegerField(null=True, blank=True)
    supervisor_started = models.FloatField(null=True, blank=True)
    # Where supervisor_pid means something: boot id and PID namespace
    # (processes.node_identity); "" for runs recorded before issue 15.
    supervisor_identity = models.CharField(max_length=100, blank=True, default="")
    pid_started = models.FloatField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("stopped by"),
    )
    skipped_runs = models.PositiveIntegerField(_("skipped runs"), default=0)
    # Progress the command reported through taskmanager.progress (None: never reported).
    progress_done = models.PositiveBigIntegerField(_("progress done"), null=True, blank=True)
    progress_total = models.PositiveBigIntegerField(_("progress total"), null=True, blank=True)
    progress_message = models.CharField(_("progress message"), max_length=200, blank=True)
    progress_at = models.DateTimeField(_("progress reported at"), null=True, blank=True)
    lines = models.PositiveIntegerField(_("lines"), default=0)
    warnings = models.PositiveIntegerField(_("warnings"), default=0)
    errors = models.PositiveIntegerField(_("errors"), default=0)

    objects = ReportQuerySet.as_manager()

    class Meta:
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        ordering = ["-invocation_datetime", "-pk"]
        indexes = [models.Index(fields=["task", "-invocation_datetime"], name="taskmanager_report_task")]

    def __str__(self):
        return f"{self.task} @ {datetimes.format_datetime(self.invocation_datetime)}"

    @property
    def is_running(self) -> bool:
        return self.finished_datetime is None

    @property
    def end_text(self) -> str:
        """The run's end kind in words, translated ("" while it runs, or for a report without one)."""
        return end_kind_text(self.end_kind, self.exit_code)

    @property
    def duration(self):
        if self.finished_datetime is None:
            return None
        return self.finished_datetime - self.invocation_datetime

    def run_marker(self) -> str:
        """Return the value of ``TASKMANAGER_RUN`` in the environment of this run's processes.

        Unique on a host: the report pk plus the supervisor's pid and start time.
        Recovery finds a run's leftovers by it after its supervisor died, also
        those that left the process group (``setsid``).
        """
        return "%s:%s:%d" % (self.pk, self.supervisor_pid, int(self.supervisor_started or 0))

    def tail(self, count=None):
        """Return the last ``count`` LogLine rows in log order (one query)."""
        count = count or app_settings.REPORT_TAIL_LINES
        rows = list(self.log_lines.order_by("-seq")[:count])
        rows.reverse()
        return rows


class RunHistory(models.Model):
    """A slim record of one finished run, kept longer than reports.

    The last ``TASKMANAGER_HISTORY_KEPT`` rows per task feed the chart of the
    task page; unlike Report rows they carry no log, so keeping many is cheap.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="history", verbose_name=_("task"))
    started = models.DateTimeField(_("started"))
    duration = models.DurationField(_("duration"))
    result = models.CharField(_("result"), max_length=10, choices=Task.Result.choices)
    end_kind = models.CharField(_("end"), max_length=12, choices=EndKind.choices, blank=True)

    class Meta:
        verbose_name = _("run history entry")
        verbose_name_plural = _("run history")
        ordering = ["-started", "-pk"]
        indexes = [models.Index(fields=["task", "-started"], name="taskmanager_history_task")]

    def __str__(self):
        return f"{self.task_id} @ {self.started.isoformat()}"


class LogLine(models.Model):
    """One captured line (or one logging record) of a run's log."""

    class Level(models.IntegerChoices):
        DEBUG = 10, "DEBUG"
        INFO = 20, "INFO"
        NOTICE = 22, "NOTICE"
        SUCCESS = 25, "SUCCESS"
        WARNING = 30, "WARNING"
        ERROR = 40, "ERROR"
        CRITICAL = 50, "CRITICAL"

    class Stream(models.TextChoices):
        STDOUT = "stdout", "stdout"
        STDERR = "stderr", "stderr"
        LOGGING = "logging", "logging"
        SYSTEM = "taskmanager", "taskmanager"

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="log_lines", db_index=False)
    seq = models.PositiveIntegerField()
    level = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.INFO)
    stream = models.CharField(max_length=11, choices=Stream.choices)
    timestamp = models.DateTimeField()
    text = models.TextField()
    # What the log viewer's level filters select on (logcapture.severity):
    # 0 below WARNING, 1 WARNING up to ERROR, 2 ERROR and above. With the
    # index below, each filter value is one index range already in seq order,
    # so a page costs the same at line 10 or line 1,000,000 (issue 5).
    severity = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["report", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["report", "seq"], name="taskmanager_logline_seq"),
        ]
        indexes = [models.Index(fields=["report", "severity", "seq"], name="taskmanager_logline_sev")]

    def __str__(self):
        return self.text

    @property
    def level_name(self) -> str:
        return logcapture.level_name(self.level)


class SpoolerHeartbeatQuerySet(models.QuerySet):
    def live(self, seconds: float | None = None):
        """The heartbeats written within ``seconds`` (default: :meth:`live_seconds`), on the database's clock."""
        seconds = self.live_seconds() if seconds is None else seconds
        return self.filter(last_seen__gte=dbclock.DbNow() - timedelta(seconds=seconds))

    @staticmethod
    def live_seconds() -> float:
        """How recent a heartbeat of a live node is: three RECOVERY_SECONDS (else NODE_TIMEOUT, else 300)."""
        seconds = float(app_settings.RECOVERY_SECONDS or 0)
        return 3 * seconds if seconds else float(app_settings.NODE_TIMEOUT or 300)

    def identity_clashes(self, seconds: float | None = None) -> list[dict]:
        """Return the host names used by spoolers of different identities seen within ``seconds``.

        Each as ``{"host": str, "nodes": [node strings]}``: live nodes (last
        seen within ``seconds``, on the database's clock) of one host name
        whose identities (``processes.node_identity``: boot and PID namespace)
        differ, or one node string written by two identities in turn
        (``clash_seen``). Such nodes judge each other's runs by heartbeat
        only; the host names should differ (issue 15).
        """
        rows = self.live(seconds).order_by("node").values_list("node", "identity")
        hosts: dict[str, dict[str, set]] = {}
        for node, identity in rows:
            host, _directory = spoolfiles.split_node(node)
            hosts.setdefault(host, {}).setdefault(node, set()).add(identity)
        since = dbclock.DbNow() - timedelta(seconds=self.live_seconds() if seconds is None else seconds)
        for node in self.filter(clash_seen__gte=since).values_list("node", flat=True):
            host, _directory = spoolfiles.split_node(node)
            hosts.setdefault(host, {}).setdefault(node, set()).add("clash")
        clashes = []
        for host, nodes in sorted(hosts.items()):
            identities = set().union(*nodes.values()) - {""}
            if len(identities) > 1:
                clashes.append({"host": host, "nodes": sorted(nodes)})
        return clashes


class SpoolerHeartbeat(models.Model):
    """The last sign of life of a node's spooler (host and spool directory)."""

    node = models.CharField(max_length=500, unique=True)
    #: On the database's clock (taskmanager.dbclock), as every time compared across nodes.
    last_seen = models.DateTimeField()
    #: The database's clock minus the node's, in seconds, measured at its last
    #: heartbeat (None: not measured yet). uWSGI compares a spool entry's
    #: ``at`` with the node's own clock: the node translates it by this offset.
    clock_offset = models.FloatField(null=True, blank=True)
    #: The boot and PID namespace of the node's last heartbeat (processes.node_identity),
    #: the identity it replaced, and when a replaced identity came back (two
    #: spoolers of one node string: see SpoolerHeartbeatQuerySet.identity_clashes).
    identity = models.CharField(max_length=100, blank=True, default="")
    previous_identity = models.CharField(max_length=100, blank=True, default="")
    clash_seen = models.DateTimeField(null=True, blank=True)

    objects = SpoolerHeartbeatQuerySet.as_manager()

    class Meta:
        verbose_name = _("spooler heartbeat")
        verbose_name_plural = _("spooler heartbeats")

    def __str__(self):
        return self.node


class AuditEntry(models.Model):
    """Who did what to a task, a command or a report, and when (``taskmanager.audit``).

    No foreign key: the actor and the object are kept as text (ids and
    names), so an entry outlives both and deleting either deletes nothing
    here. Entries are written by the app only, shown read-only in the admin,
    and pruned after ``TASKMANAGER_AUDIT_DAYS`` days.
    """

    class Action(models.TextChoices):
        CREATE = "create", _("create")
        EDIT = "edit", _("edit")
        START = "start", _("start")
        STOP = "stop", _("stop")
        RUN_NOW = "run now", _("run now")
        ACTIVATE = "activate", _("activate")
        DEACTIVATE = "deactivate", _("deactivate")
        RIGHTS = "rights", _("run rights")
        DELETE = "delete", _("delete")
        PRUNE = "prune", _("prune reports")

    class ObjectType(models.TextChoices):
        TASK = "task", _("task")
        COMMAND = "command", _("command")
        REPORT = "report", _("report")

    when = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    # The user's id and username as they were; no id for collection
    # ("collect_commands") or the spooler ("system").
    actor_id = models.BigIntegerField(_("actor id"), null=True, blank=True)
    actor_name = models.CharField(_("who"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=12, choices=Action.choices)
    object_type = models.CharField(_("object type"), max_length=10, choices=ObjectType.choices)
    object_id = models.CharField(_("object id"), max_length=40)
    object_repr = models.CharField(_("object"), max_length=300)
    # The task an entry about a report belongs to (its history page lists it).
    task_ref = models.CharField(_("task id"), max_length=40, blank=True)
    # {field: [before, after]}, values as JSON (dates ISO 8601, objects by name).
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    message = models.TextField(_("message"), blank=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit")
        ordering = ["-when", "-pk"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "-when"], name="taskmanager_audit_object"),
            models.Index(fields=["task_ref", "-when"], name="taskmanager_audit_task"),
        ]

    def __str__(self):
        return "%s %s %s" % (self.actor_name or "-", self.get_action_display(), self.object_repr)


class DjangoTaskResultQuerySet(models.QuerySet):
    def due(self, queues):
        """The rows a spooler serving ``queues`` may claim now, in claim order.

        READY, of one of ``queues`` (Django's queue names are the app's), with
        no ``run_after`` or one past on the database's clock; the highest
        ``priority`` first, then the oldest (the index ``taskmanager_result_claim``).
        Used by the claim (``djangotasks/run.py``) and by the periodic pass
        that hints rows nobody hinted (``recovery/results.py``).
        """
        ready = self.filter(status=DjangoTaskResult.Status.READY, queue_name__in=queues)
        due = ready.filter(models.Q(run_after__isnull=True) | models.Q(run_after__lte=dbclock.DbNow()))
        return due.order_by("-priority", "enqueued_at", "pk")


class DjangoTaskResult(models.Model):
    """One enqueued ``django.tasks`` function call and its result (``taskmanager.djangotasks``).

    The row is the queue of record of the django.tasks backend: enqueued
    READY, claimed by one conditional UPDATE to RUNNING (highest ``priority``
    first, then the oldest, among the due rows of the queues a node serves),
    ended SUCCESSFUL or FAILED, never left RUNNING (the supervisor, else
    recovery, fails it). Its arguments and return value are JSON; ``errors``
    are ``{"exception_class_path", "traceback"}`` objects. The run's log is
    the ``report``'s (the same viewer as a command's). The field names and
    statuses are Django's (``django.tasks.TaskResult``); nothing here imports
    ``django.tasks``, so the table exists (empty) on Django 5.2 too.
    """

    class Status(models.TextChoices):
        READY = "READY", _("Ready")
        RUNNING = "RUNNING", _("Running")
        FAILED = "FAILED", _("Failed")
        SUCCESSFUL = "SUCCESSFUL", _("Successful")

    #: A uuid4 in hex: the TaskResult's id, also the token of its spool hint.
    id = models.CharField(_("id"), max_length=32, primary_key=True, default=new_token, editable=False)
    backend = models.CharField(_("backend"), max_length=100)
    task_path = models.CharField(_("task"), max_length=300)
    queue_name = models.CharField(_("queue"), max_length=100)
    priority = models.SmallIntegerField(_("priority"), default=0)
    takes_context = models.BooleanField(default=False)
    run_after = models.DateTimeField(_("run after"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.READY)
    args = models.JSONField(_("positional arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    return_value = models.JSONField(_("return value"), null=True, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    worker_ids = models.JSONField(_("workers"), default=list, blank=True)
    # On the database's clock (dbclock), as every time other nodes compare.
    enqueued_at = models.DateTimeField(_("enqueued at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    last_attempted_at = models.DateTimeField(_("last attempted at"), null=True, blank=True)
    # The run's report (its log, its supervisor for recovery, Stop); set by the claim.
    report = models.ForeignKey(
        Report, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("report")
    )

    objects = DjangoTaskResultQuerySet.as_manager()

    #: The internal command a run's child runs (a leading "_": Django lists no such command).
    CARRIER_COMMAND = "_run_task_result"
    #: How carrier tasks (one per function, holding its runs' reports) are named: this and the path.
    CARRIER_PREFIX = "django.tasks: "

    class Meta:
        verbose_name = _("task result")
        verbose_name_plural = _("task results")
        ordering = ["-enqueued_at", "-pk"]
        indexes = [
            # The claim: the READY rows of a queue, highest priority first, oldest first.
            models.Index(
                fields=["status", "queue_name", "-priority", "enqueued_at"], name="taskmanager_result_claim"
            ),
        ]

    def __str__(self):
        return "%s (%s)" % (self.task_path, self.pk)

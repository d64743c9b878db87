"""HTML pieces of the admin pages: badges, durations, progress bars, the chart of last runs.

Every function returns safe HTML built with ``format_html`` /
``format_html_join``, so text a user or a command controls (task names,
progress messages) is always escaped.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from . import datetimes, dbclock, progress, schedule
from .models import EndKind, Task, end_kind_text

#: What an empty value shows, as Django's admin shows one (``empty_value_display``).
EMPTY = "-"


def badge(value: str, label) -> str:
    """Return a coloured badge for a status or result value (``EMPTY`` when empty)."""
    if not value:
        return EMPTY
    return format_html('<span class="tm-badge tm-{}">{}</span>', value.lower(), label)


def _end_short(kind: str, exit_code) -> str:
    """The few words of an end kind shown beside a Failed badge."""
    if kind == EndKind.STOPPED:
        return _("stopped")
    return end_kind_text(kind, exit_code)


def result_badge(result: str, label, end_kind: str = "", exit_code=None) -> str:
    """Return a run's result badge and, for a failed run, how it ended (words under the badge).

    The words say it, not the colour alone: a run a user stopped reads
    "stopped" (and its badge is grey), a crash "crashed", and so on; the
    full words are the tooltip (issue 16).
    """
    if result != Task.Result.FAILED or not end_kind:
        return badge(result, label)
    return format_html(
        '<span class="tm-result tm-end-{}"><span class="tm-badge tm-failed">{}</span>'
        '<span class="tm-end" title="{}">{}</span></span>',
        end_kind.replace(" ", "-"),
        label,
        end_kind_text(end_kind, exit_code),
        _end_short(end_kind, exit_code),
    )


def end_text(report) -> str:
    """Return how a finished run ended, in words of the user's language ("" while it runs).

    The kind (``Report.end_kind``) with what the stored end reason adds to it:
    who stopped it, the exception or signal of a crash, why it was not run.
    A report of before the kinds keeps its stored reason.
    """
    kind, reason = report.end_kind, report.end_reason
    if not kind:
        return reason
    if kind == EndKind.STOPPED and reason.startswith("stopped by user "):
        return _("stopped by %(user)s") % {"user": reason[len("stopped by user ") :]}
    if kind == EndKind.CRASHED and reason:
        return _("crashed (%(detail)s)") % {"detail": reason}
    if kind == EndKind.NOT_RUN:
        why = {
            "invalid arguments": _("invalid arguments"),
            "command inactive": _("command inactive"),
            "not allowed": _("not allowed"),
        }.get(reason)
        if why:
            return _("not run: %(why)s") % {"why": why}
    return end_kind_text(kind, report.exit_code)


def compact_datetime(value) -> str:
    """Return an aware datetime as ``2026-11-30 04:12:09`` in local time, for narrow columns.

    The app's one format (:mod:`taskmanager.datetimes`); the date and the
    time each stay on one line (the cell may wrap between them), the time
    zone is the tooltip. ``EMPTY`` for None.
    """
    if value is None:
        return EMPTY
    local = timezone.localtime(value)
    return format_html(
        '<time class="tm-when" datetime="{}" title="{}"><span>{}</span> <span>{}</span></time>',
        value.isoformat(),
        "%s %s" % (datetimes.format_datetime(local), local.tzname()),
        datetimes.date_part(local),
        datetimes.time_part(local),
    )


def datetime_column(model, field: str):
    """Return an admin column (and read-only field) showing ``model.field`` in the app's one format.

    Django's admin shows a date field in ``DATETIME_FORMAT``, to the minute
    and unlike the rest of the app (issue 16, item 8): the admins name this
    column instead of the field.
    """

    def column(self, obj):
        return datetimes.format_datetime(getattr(obj, field, None) if obj is not None else None, empty=EMPTY)

    column.__name__ = field + "_display"
    label = model._meta.get_field(field).verbose_name
    return admin.display(description=label, ordering=field)(column)


def cannot_run(reason: str | None) -> str:
    """Return the task list's marker for a task that cannot run (its command inactive or blocked).

    Empty when ``reason`` is None; the reason (:func:`taskmanager.policy.command_refusal`) is the
    tooltip. The task page says it in full.
    """
    if not reason:
        return ""
    return format_html('<span class="tm-cannot-run" title="{}">⚠ {}</span>', reason, _("cannot run"))


def repeats(task, periodic_only: bool = False) -> str:
    """Return how often ``task`` runs ("every 2 hours", "once") as a sub-line of a list column.

    With ``periodic_only`` a one-off task shows nothing. An invalid stored
    schedule (the form refuses one) shows nothing either.
    """
    try:
        periodic = schedule.is_periodic(task.repetition_period, task.repetition_rate)
        text = schedule.repeats(task.repetition_period, task.repetition_rate)
    except schedule.ScheduleError:
        return ""
    if periodic_only and not periodic:
        return ""
    return format_html('<span class="tm-sub tm-repeats">{}</span>', text)


class RepetitionFilter(admin.SimpleListFilter):
    """The task list's filter: periodic tasks or one-off ones."""

    title = gettext_lazy("repetition")
    parameter_name = "repeats"

    def lookups(self, request, model_admin):
        return [("periodic", gettext_lazy("Periodic")), ("once", gettext_lazy("Once"))]

    def queryset(self, request, queryset):
        periodic = Q(repetition_rate__gt=0) & ~Q(repetition_period="")
        if self.value() == "periodic":
            return queryset.filter(periodic)
        if self.value() == "once":
            return queryset.exclude(periodic)
        return queryset


class AppNameFilter(admin.SimpleListFilter):
    """The task list's filter by its command's app: the apps of the tasks the list shows.

    Django's filter of ``command__app_name`` offers the values of every task,
    the carrier tasks of django.tasks functions too (app "taskmanager"),
    which the list leaves out: a choice leading to an empty list.
    """

    title = gettext_lazy("app name")
    parameter_name = "command__app_name"

    def lookups(self, request, model_admin):
        names = model_admin.model.objects.offered().values_list("command__app_name", flat=True)
        return [(name, name) for name in names.order_by("command__app_name").distinct()]

    def queryset(self, request, queryset):
        return queryset.filter(command__app_name=self.value()) if self.value() else queryset


def counts(errors: int, warnings: int) -> str:
    """Return "errors / warnings" of a run for one narrow column, non-zero counts coloured."""
    title = "%s, %s" % (
        ngettext("%(count)d error", "%(count)d errors", errors) % {"count": errors},
        ngettext("%(count)d warning", "%(count)d warnings", warnings) % {"count": warnings},
    )
    return format_html(
        '<span class="tm-counts" title="{}"><span class="tm-count-errors{}">{}</span> / '
        '<span class="tm-count-warnings{}">{}</span></span>',
        title,
        "" if errors else " tm-zero",
        errors,
        "" if warnings else " tm-zero",
        warnings,
    )


def format_duration(value: timedelta | float | None) -> str:
    """Return a short human duration: ``"0.4 s"``, ``"12 s"``, ``"3 min 5 s"``, ``"2 h 4 min"``."""
    if value is None:
        return EMPTY
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return _("%(seconds)s s") % {"seconds": localize(round(seconds, 1))}
    seconds = round(seconds)
    if seconds < 60:
        return _("%(seconds)d s") % {"seconds": seconds}
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": seconds}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


def progress_bar(done, total, message, started, reported_at, now=None) -> str:
    """Return the progress bar of a running run (empty string if it reported nothing).

    ``done``/``total``/``message``/``reported_at`` are the Report's progress
    fields, ``started`` its invocation time. Besides the full text and the
    message (the task page), a one-line short text ("81% · 1.5 s left") is
    what the task list shows, the rest in the tooltip, so a running row
    keeps its height as its progress changes (issue 16).
    """
    if done is None:
        return ""
    now = now or dbclock.now()
    pct = progress.percent(done, total)
    if pct is None:
        text = short = ngettext("%(done)s done", "%(done)s done", done) % {"done": localize(done)}
        bar = format_html('<span class="tm-bar tm-bar-unknown"><span style="width:100%"></span></span>')
    else:
        eta = progress.eta_seconds(done, total, started, reported_at, now)
        text = _("%(percent)s%% (%(done)s of %(total)s)") % {
            "percent": localize(int(pct)),
            "done": localize(done),
            "total": localize(total),
        }
        short = "%s%%" % localize(int(pct))
        if eta is not None and pct < 100:
            text += " · " + _("about %(duration)s left") % {"duration": format_duration(eta)}
            short += " · " + _("%(duration)s left") % {"duration": format_duration(eta)}
        bar = format_html(
            '<span class="tm-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            'aria-valuenow="{}"><span style="width:{}%"></span></span>',
            int(pct),
            "%.1f" % pct,
        )
    return format_html(
        '<span class="tm-progress" title="{}">{}<span class="tm-progress-short">{}</span>'
        '<span class="tm-progress-text">{}</span>{}</span>',
        "%s\n%s" % (text, message) if message else text,
        bar,
        short,
        text,
        format_html('<span class="tm-progress-message">{}</span>', message) if message else "",
    )


def live_status(task, run=None) -> str:
    """Return the status badge of ``task`` and, while it runs, its progress bar.

    ``run`` is the running Report (or an object with the same progress
    attributes), or None.
    """
    parts = [badge(task.status, task.get_status_display())]
    if run is not None and task.status == task.Status.STARTED:
        parts.append(
            progress_bar(
                run.progress_done,
                run.progress_total,
                run.progress_message,
                run.invocation_datetime,
                run.progress_at,
            )
        )
    return format_html_join("", "{}", ((part,) for part in parts if part))


# -- the chart of last runs ----------------------------------------------------

CHART_WIDTH = 600
CHART_HEIGHT = 120
CHART_LEFT = 48
CHART_BOTTOM = 18


def runs_chart(runs) -> str:
    """Return an inline SVG bar chart of ``runs`` (RunHistory rows, oldest first).

    Bar height is the run's duration, on a linear scale up to the longest
    run; the colour is its result, grey for a failed run a user stopped. Each
    bar has a tooltip with the time, duration, result and how a failed run ended.
    """
    if not runs:
        return format_html('<p class="tm-chart-empty">{}</p>', _("No finished run yet."))
    longest = max(run.duration.total_seconds() for run in runs) or 1.0
    plot_w = CHART_WIDTH - CHART_LEFT - 4
    plot_h = CHART_HEIGHT - CHART_BOTTOM - 6
    step = plot_w / max(len(runs), 10)
    bar_w = max(step * 0.8, 1.0)
    bars = []
    for index, run in enumerate(runs):
        height = max(plot_h * run.duration.total_seconds() / longest, 1.5)
        x = CHART_LEFT + index * step + (step - bar_w) / 2
        y = 6 + plot_h - height
        result = run.get_result_display()
        ended = run.result == Task.Result.FAILED and run.end_kind
        if ended:
            result = "%s (%s)" % (result, end_kind_text(run.end_kind))
        tooltip = "%s · %s · %s" % (
            datetimes.format_datetime(run.started),
            format_duration(run.duration),
            result,
        )
        classes = "tm-run-%s%s" % (
            run.result.lower(),
            " tm-end-" + run.end_kind.replace(" ", "-") if ended else "",
        )
        bars.append(("%.1f" % x, "%.1f" % y, "%.1f" % bar_w, "%.1f" % height, classes, tooltip))
    return format_html(
        '<svg class="tm-chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}">'
        '<line class="tm-axis" x1="{left}" y1="6" x2="{left}" y2="{base}"></line>'
        '<line class="tm-axis" x1="{left}" y1="{base}" x2="{right}" y2="{base}"></line>'
        '<text class="tm-axis-label" x="{lx}" y="12" text-anchor="end">{top}</text>'
        '<text class="tm-axis-label" x="{lx}" y="{base}" text-anchor="end">0</text>'
        '<text class="tm-axis-label" x="{left}" y="{h}">{older}</text>'
        '<text class="tm-axis-label" x="{right}" y="{h}" text-anchor="end">{newer}</text>'
        "{bars}</svg>",
        w=CHART_WIDTH,
        h=CHART_HEIGHT,
        label=ngettext(
            "Durations of the last %(count)d run", "Durations of the last %(count)d runs", len(runs)
        )
        % {"count": len(runs)},
        left=CHART_LEFT,
        right=CHART_WIDTH - 4,
        base=6 + plot_h,
        lx=CHART_LEFT - 4,
        top=format_duration(longest),
        older=_("older"),
        newer=_("newer"),
        bars=format_html_join(
            "",
            '<rect class="tm-run {4}" x="{0}" y="{1}" width="{2}" height="{3}"><title>{5}</title></rect>',
            bars,
        ),
    )


def chart_legend() -> str:
    """Return the legend of the chart's colours: the four results, then a stopped run's grey.

    A stopped run's result is Failed: its entry says "Stopped by a user",
    with Failed in its tooltip, not "Failed" a second time (issue 16).
    """
    stopped = end_kind_text(EndKind.STOPPED)
    return format_html(
        '<span class="tm-chart-legend">{} <span class="tm-end-stopped">'
        '<span class="tm-badge tm-failed" title="{}">{}</span></span></span>',
        format_html_join(
            " ",
            '<span class="tm-badge tm-{}">{}</span>',
            ((value.lower(), label) for value, label in Task.Result.choices),
        ),
        "%s: %s" % (Task.Result.FAILED.label, stopped),
        stopped[:1].upper() + stopped[1:],
    )

"""The log viewer of a report: page, live follow (JSON) and download (text).

Three admin views, registered by ``ReportAdmin.get_urls`` through
:func:`urls` and wrapped in ``admin_site.admin_view`` (so they need the admin
login); each also needs Django's ``view_report`` permission
(``ModelAdmin.has_view_permission``) and the read rights of the report's
command (``policy.may_read``, through ``ReportAdmin.get_object``), else 403:

* ``admin:taskmanager_report_log`` - ``<pk>/log/``: one page of the log,
  filtered by level (``level=ALL|WARNING|ERROR``, WARNING meaning warnings and
  above) and by a text (``q``), positioned by ``after`` / ``before`` (a line
  number, exclusive) or ``last=1``; without a position, the first page of a
  finished run and the last page of a running one.
* ``admin:taskmanager_report_log_follow`` - ``<pk>/log/follow/?after=N``:
  JSON with the matching lines after line N (at most one page), the new
  cursor, and whether the run is still going; the page's script polls it
  about once a second while the run goes on.
* ``admin:taskmanager_report_log_download`` - ``<pk>/log/download/``: the
  whole log as a streamed text file, one entry per row with its time, level
  and source; further lines of an entry start with ``logstore.CONTINUATION``.

All log text is escaped; ``http``/``https`` URLs become links with
``rel="noopener nofollow noreferrer"``. Pages cost the same few queries at any
position in the log (see :mod:`taskmanager.logstore`).
"""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from . import display, logstore
from .logcapture import level_name

#: The level filters' labels (their identifiers, logstore.FILTERS, stay in the URLs).
FILTER_LABELS = {
    "ALL": pgettext_lazy("log filter", "ALL"),
    "WARNING": pgettext_lazy("log filter", "WARNING"),
    "ERROR": pgettext_lazy("log filter", "ERROR"),
}
#: Lines per page (and per answer of the follow endpoint).
PAGE_LINES = 500
#: Characters of a line shown on the page; the download has every line whole.
SHOWN_CHARS = 5000

# http(s) URLs up to a space, a quote or an angle bracket.
_URL_RE = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\""


def urls(model_admin) -> list:
    """Return the URL patterns of the viewer for ``ReportAdmin.get_urls``."""
    wrap = model_admin.admin_site.admin_view

    def bind(view):
        def bound(request, object_id):
            return view(model_admin, request, object_id)

        return wrap(bound)

    return [
        path("<path:object_id>/log/", bind(log_view), name="taskmanager_report_log"),
        path("<path:object_id>/log/follow/", bind(follow_view), name="taskmanager_report_log_follow"),
        path("<path:object_id>/log/download/", bind(download_view), name="taskmanager_report_log_download"),
    ]


def get_report(model_admin, request, object_id):
    """Return the report or raise Http404 / PermissionDenied (no view permission)."""
    report = model_admin.get_object(request, object_id)
    if report is None:
        raise Http404(_("This report does not exist (any more)."))
    if not model_admin.has_view_permission(request, report):
        raise PermissionDenied
    return report


# -- rendering ------------------------------------------------------------------
def _url_end(url: str) -> int:
    """Return the length of ``url`` without trailing punctuation of the sentence around it."""
    # A ")" ends the URL only when unbalanced, as in "(see http://x/a_(b))";
    # counted once, so a line full of parentheses stays linear.
    opened, closed = url.count("("), url.count(")")
    end = len(url)
    while end:
        char = url[end - 1]
        if char == ")" and closed > opened:
            closed -= 1
        elif char not in _TRAILING:
            break
        end -= 1
    return end


def render_text(text: str) -> SafeString:
    """Return ``text`` escaped, with its http(s) URLs as links that open safely."""
    parts = []
    pos = 0
    for match in _URL_RE.finditer(text):
        url = match.group(0)
        end = _url_end(url)
        if end <= len("https://"):
            continue
        url = url[:end]
        parts.append(escape(text[pos : match.start()]))
        parts.append(
            format_html('<a href="{}" rel="noopener nofollow noreferrer" target="_blank">{}</a>', url, url)
        )
        pos = match.start() + end
    if not parts:
        return escape(text)
    parts.append(escape(text[pos:]))
    return mark_safe("".join(parts))  # every part was escaped above


def _row(row: dict, link) -> dict:
    """Add what the page shows to a row of logstore.read_page(); ``link(**params)`` makes URLs."""
    text = row["text"]
    cut = len(text) > SHOWN_CHARS
    if cut:
        text = text[:SHOWN_CHARS]
    name = level_name(row["level"])
    stamp = timezone.localtime(row["timestamp"])
    return {
        "seq": row["seq"],
        "time": stamp.strftime("%H:%M:%S.%f")[:-3],
        "datetime": stamp.isoformat(),
        "level": name,
        "css": "tm-level-" + slugify(name),
        "stream": row["stream"],
        "html": render_text(text),
        "cut": cut,
        # The page that starts with this line, scrolled to it.
        "url": "%s#L%d" % (link(after=row["seq"] - 1), row["seq"]),
    }


def _status(report, following: bool = True) -> str:
    if report.is_running and not following:
        return _("The run is still going: open the last lines to follow it.")
    if report.is_running:
        return _("The run is still going: new lines appear here as they are written.")
    return _("The run has finished (%(result)s, %(reason)s): this is the whole log.") % {
        "result": report.get_result_display() or "–",
        "reason": display.end_text(report) or "–",
    }


def _int_param(request, name: str) -> int | None:
    value = request.GET.get(name, "")
    try:
        number = int(value)
    except ValueError:
        return None
    return max(number, 0)


def _filters(request) -> tuple[str, str]:
    level = request.GET.get("level", "ALL").upper()
    if level not in logstore.FILTERS:
        level = "ALL"
    # A NUL is stored as U+FFFD (logcapture.clean_text), and PostgreSQL
    # refuses NUL in a query: search for what was stored.
    return level, request.GET.get("q", "").replace("\x00", "\ufffd").strip()[:200]


def _linker(report, level: str, query: str):
    """Return ``link(**position)``: the viewer's URL with the current filters and a position."""
    base = reverse("admin:taskmanager_report_log", args=[report.pk])

    def link(**position):
        params = {"level": level}
        if query:
            params["q"] = query
        params.update(position)
        return base + "?" + urlencode(params)

    return link


# -- views ----------------------------------------------------------------------
def log_view(model_admin, request, object_id):
    """One page of a report's log, filtered and positioned by the query string."""
    report = get_report(model_admin, request, object_id)
    level, query = _filters(request)
    after, before = _int_param(request, "after"), _int_param(request, "before")
    last = request.GET.get("last") == "1" or (after is None and before is None and report.is_running)
    page = logstore.read_page(
        report.pk,
        level,
        query,
        after=after,
        before=before,
        last=last,
        size=PAGE_LINES,
        text_chars=SHOWN_CHARS,
    )
    link = _linker(report, level, query)
    base = reverse("admin:taskmanager_report_log", args=[report.pk])

    at_end = not page.has_after
    if page.last_seq is not None:
        cursor = page.last_seq
    else:
        cursor = after if after is not None else max((before or 1) - 1, 0)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Log of %(report)s") % {"report": report},
        "opts": model_admin.opts,
        "task_opts": report.task._meta,  # for the breadcrumbs
        "report": report,
        "rows": [_row(row, link) for row in page.rows],
        "level": level,
        "query": query,
        "level_links": [
            (
                FILTER_LABELS[name],
                base + "?" + urlencode({"level": name, **({"q": query} if query else {})}),
                name == level,
            )
            for name in logstore.FILTERS
        ],
        "first_url": link(after=0) if page.has_before else None,
        "prev_url": link(before=page.first_seq) if page.has_before else None,
        "next_url": link(after=page.last_seq) if page.has_after else None,
        "last_url": link(last=1) if page.has_after else None,
        "follow": report.is_running and at_end,
        "follow_url": reverse("admin:taskmanager_report_log_follow", args=[report.pk])
        + "?"
        + urlencode({"level": level, **({"q": query} if query else {})}),
        "cursor": cursor,
        "download_url": reverse("admin:taskmanager_report_log_download", args=[report.pk]),
        "status": _status(report, following=at_end),
        "shown_chars": SHOWN_CHARS,
        "page_lines": PAGE_LINES,
    }
    return TemplateResponse(request, "admin/taskmanager/report/log.html", context)


def follow_view(model_admin, request, object_id):
    """JSON: the matching lines after ``after``, the next cursor and the run's state.

    The report is read before the lines: once it says finished, every line
    was committed with it, so a client that stops then has missed nothing.
    """
    report = get_report(model_admin, request, object_id)
    level, query = _filters(request)
    after = _int_param(request, "after") or 0
    page = logstore.read_page(report.pk, level, query, after=after, size=PAGE_LINES, text_chars=SHOWN_CHARS)
    link = _linker(report, level, query)
    rows = [_row(row, link) for row in page.rows]
    for row in rows:
        row["html"] = str(row["html"])
    return JsonResponse(
        {
            "lines": rows,
            "cursor": page.last_seq if page.last_seq is not None else after,
            "more": page.has_after,
            "running": report.is_running,
            "status": _status(report),
            "counts": {"lines": report.lines, "warnings": report.warnings, "errors": report.errors},
            "result": report.get_result_display() if not report.is_running else _("running"),
        }
    )


def download_view(model_admin, request, object_id):
    """The whole log as a streamed text file (UTF-8), in line order."""
    report = get_report(model_admin, request, object_id)
    tz = timezone.get_current_timezone()
    # (a task name with a line break must not make a line of its own either)
    header = logstore.mark_continuations(
        _("Log of %(report)s, times in %(tz)s") % {"report": report, "tz": tz}
    )

    def content():
        # About 64 KB per chunk: one write per line would cost a system call each.
        chunk, size = [header + "\n"], 0
        for _seq, stamp, level, stream, text in logstore.iter_lines(report.pk):
            line = logstore.format_line(stamp.astimezone(tz), level, stream, text)
            chunk.append(line)
            size += len(line)
            if size >= 65536:
                yield "".join(chunk)
                chunk, size = [], 0
        yield "".join(chunk)

    response = StreamingHttpResponse(content(), content_type="text/plain; charset=utf-8")
    name = "%s-report-%d.log" % (slugify(report.task.name) or "task", report.pk)
    response["Content-Disposition"] = 'attachment; filename="%s"' % name
    response["X-Content-Type-Options"] = "nosniff"
    return response

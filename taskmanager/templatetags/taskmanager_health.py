"""The admin banners shown when no spooler is alive or tasks are overdue: ``{% spooler_banner %}``.

Used by the task list, the task page and the app index of the task manager
(templates ``admin/taskmanager/...``). It costs a few small queries.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from django import template
from django.conf import settings
from django.db.models import Q
from django.utils.module_loading import import_string

from .. import dbclock, spoolaside, uwsgi_runtime
from ..conf import app_settings
from ..models import Report, SpoolerHeartbeat, Task

register = template.Library()


def silent_spoolers(now: datetime | None = None) -> dict | None:
    """Return what the banner says when the spooler tasks depend on shows no sign of life, else None.

    A sign of life is a ``SpoolerHeartbeat`` (written when a spooler process
    starts and at every periodic recovery tick, ``TASKMANAGER_RECOVERY_SECONDS``)
    or the heartbeat of a running report (written every
    ``TASKMANAGER_HEARTBEAT_SECONDS`` while a spooler supervises a run), newer
    than ``TASKMANAGER_NODE_TIMEOUT`` seconds.

    Under uWSGI only the node this process spools to counts (the tasks
    started here run there); elsewhere (``runserver``, a shell) any node
    does. Returns ``{"last_seen": datetime or None, "node": str}``. Never
    warns when NODE_TIMEOUT is 0 or the backend is not the uWSGI one (the
    immediate backend of tests has no spooler): the backend's
    ``reports_heartbeats`` says.
    """
    timeout = app_settings.NODE_TIMEOUT
    if not timeout:
        return None
    try:
        backend = import_string(app_settings.BACKEND)
    except ImportError:
        return None  # reported by the system check taskmanager.E002
    if not getattr(backend, "reports_heartbeats", False):
        return None
    since = (now or dbclock.now()) - timedelta(seconds=timeout)
    beats = SpoolerHeartbeat.objects.order_by("-last_seen")
    runs = Report.objects.running().filter(heartbeat__gte=since)
    if uwsgi_runtime.spool_target_configured():
        node = backend().node()
        beats = beats.filter(node=node)
        runs = runs.filter(task__spooler_node=node)
    latest = beats.values_list("last_seen", "node").first()
    if latest and latest[0] >= since:
        return None
    if runs.exists():
        return None
    return {"last_seen": latest[0] if latest else None, "node": latest[1] if latest else ""}


#: Silent nodes the banner names at most, and how long a node that stopped
#: reporting stays listed (a node removed for good drops out of the banner).
SILENT_LISTED = 10
SILENT_LISTED_FOR = timedelta(days=1)


def silent_nodes() -> list[dict]:
    """Return the spooler nodes silent for over NODE_TIMEOUT (within a day), with where their work went.

    Each as ``{"node": str, "last_seen": datetime, "waiting": int}``:
    ``waiting`` counts the pending tasks still recorded on the node (not
    yet taken over by another node, ``recovery/takeover.py``). Empty when
    NODE_TIMEOUT is 0. One query, plus one count per node listed.
    """
    timeout = app_settings.NODE_TIMEOUT
    if not timeout:
        return []
    now = dbclock.now()
    rows = (
        SpoolerHeartbeat.objects.filter(
            last_seen__lt=now - timedelta(seconds=timeout), last_seen__gte=now - SILENT_LISTED_FOR
        )
        .order_by("-last_seen")
        .values_list("node", "last_seen")[:SILENT_LISTED]
    )
    return [
        {"node": node, "last_seen": seen, "waiting": Task.objects.queued().filter(spooler_node=node).count()}
        for node, seen in rows
    ]


#: Nodes the clock banner names at most.
CLOCKS_LISTED = 10


def skewed_clocks() -> list[dict]:
    """Return the nodes whose clock differs from the database's by more than CLOCK_TOLERANCE seconds.

    Each as ``{"node": str, "seconds": float, "ahead": bool}``, from the
    offset measured at its last heartbeat (``SpoolerHeartbeat.clock_offset``,
    the database's clock minus the node's); only nodes seen within
    NODE_TIMEOUT (any node when it is 0). Empty when the tolerance is 0.
    """
    tolerance = app_settings.CLOCK_TOLERANCE
    if not tolerance:
        return []
    beats = SpoolerHeartbeat.objects.filter(Q(clock_offset__gt=tolerance) | Q(clock_offset__lt=-tolerance))
    if app_settings.NODE_TIMEOUT:
        beats = beats.filter(last_seen__gte=dbclock.DbNow() - timedelta(seconds=app_settings.NODE_TIMEOUT))
    rows = beats.order_by("node").values_list("node", "clock_offset")[:CLOCKS_LISTED]
    return [{"node": node, "seconds": round(abs(offset)), "ahead": offset < 0} for node, offset in rows]


def shared_host_names() -> list[dict]:
    """Return the host names shared by live spooler nodes of different identities (check W019).

    ``[{"host": str, "nodes": [node strings]}]``
    (``SpoolerHeartbeat.objects.identity_clashes``).
    """
    return SpoolerHeartbeat.objects.identity_clashes()[:CLOCKS_LISTED]


def runs_as_root() -> bool:
    """Whether this uWSGI process runs as root (check taskmanager.W014), unless the check is silenced."""
    if "taskmanager.W014" in settings.SILENCED_SYSTEM_CHECKS:
        return False
    try:
        import uwsgi  # noqa: F401 - only present inside uWSGI
    except ImportError:
        return False
    return hasattr(os, "geteuid") and os.geteuid() == 0


#: Overdue tasks the banner names at most (it gives the count of all).
OVERDUE_LISTED = 10


def overdue_tasks() -> dict | None:
    """Return ``{"count": n, "tasks": [(pk, name), ...]}`` for the overdue tasks, or None.

    Overdue: pending, next execution more than ``TASKMANAGER_OVERDUE_GRACE``
    seconds in the past (``TaskQuerySet.overdue``): its run did not happen.
    """
    overdue = Task.objects.overdue().order_by("next_datetime", "pk")
    tasks = list(overdue.values_list("pk", "name")[:OVERDUE_LISTED])
    if not tasks:
        return None
    count = len(tasks) if len(tasks) < OVERDUE_LISTED else overdue.count()
    return {"count": count, "tasks": tasks, "more": count > len(tasks)}


def unreadable_files() -> list[str]:
    """Names of the spool files moved aside as unreadable in this node's spool directory (under uWSGI)."""
    if not uwsgi_runtime.spool_target_configured():
        return []
    return spoolaside.moved_aside(uwsgi_runtime.spool_dir())


@register.inclusion_tag("admin/taskmanager/spooler_banner.html")
def spooler_banner():
    """Render the "tasks will not run", "overdue", "clock", "silent nodes", "runs as root" and "unreadable" banners."""
    unreadable = unreadable_files()
    return {
        "silence": silent_spoolers(),
        "overdue": overdue_tasks(),
        "clocks": skewed_clocks(),
        "silent_nodes": silent_nodes(),
        "shared_hosts": shared_host_names(),
        "root": runs_as_root(),
        "unreadable": unreadable[:10],
        "unreadable_more": max(0, len(unreadable) - 10),
        "unreadable_dir": os.path.join(uwsgi_runtime.spool_dir(), spoolaside.DIRNAME) if unreadable else "",
    }

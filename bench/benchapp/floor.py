"""The floor: a bare uWSGI spool function in the same server as the task manager.

``POST /bench/floor/`` spools ``count`` entries for ``bench_floor`` (with an
optional ``at``, unix seconds); the function only notes when it was entered:
one line ``<sent> <spooled> <at> <entered>`` (unix seconds) appended to
``$TM_BENCH_DIR/floor.log`` *after* taking the time. ``sent`` is the client's
clock when it sent the request (same machine), ``spooled`` the view's clock
just before ``uwsgi.spool()``.

No login and no CSRF: this view exists only in the bench project.
"""

import os
import time

from django.http import HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

FUNCTION = "bench_floor"

try:
    import uwsgi
except ImportError:  # outside uWSGI (the bench process itself)
    uwsgi = None


def bench_floor(env: dict) -> int:
    entered = time.time()
    base = os.environ.get("TM_BENCH_DIR", ".")
    with open(os.path.join(base, "floor.log"), "a") as fh:
        fh.write(
            "%s %s %s %.6f\n" % (env.get("sent", "0"), env.get("spooled", "0"), env.get("at", "0"), entered)
        )
    return uwsgi.SPOOL_OK


def register() -> None:
    """Register ``bench_floor`` with uwsgidecorators when this process has a spooler."""
    from taskmanager.spooler.uwsgi import spooler_configured

    if not spooler_configured():
        return
    import uwsgidecorators

    uwsgidecorators.spooler_functions[FUNCTION] = bench_floor


@csrf_exempt
def floor_view(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    sent = request.POST.get("sent", "0").encode()
    at = request.POST.get("at", "")
    count = int(request.POST.get("count", "1"))
    for _ in range(count):
        entry = {b"ud_spool_func": FUNCTION.encode(), b"sent": sent, b"spooled": b"%.6f" % time.time()}
        if at:
            entry[b"at"] = at.encode()
        uwsgi.spool(entry)
    return HttpResponse("spooled %d\n" % count, content_type="text/plain")

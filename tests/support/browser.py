"""Debian's chromium driven by Playwright: where it is, how it starts, how a page logs in."""

import contextlib
import os
import shutil
import tempfile

import pytest

from .adminclient import PASSWORD
from .scale import scaled
from .uwsgi_server import ROOT

CHROMIUM = os.environ.get("TM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots of the browser tests.
ARTIFACTS = ROOT / "tests" / "artifacts"
#: Playwright's limit for an action, a navigation and an ``expect`` (its own default is 5 s for
#: ``expect``: a live update on a loaded machine takes longer), scaled by TM_TEST_TIMEOUT_SCALE.
TIMEOUT_MS = int(scaled(60) * 1000)


def unavailable(reason: str):
    """Fail under CI (``CI=true``), else skip: chromium or Playwright is missing."""
    message = "browser tests cannot run: %s" % reason
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: .ci/run must install chromium and Playwright)", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def chromium(playwright_api, width=1600):
    """A chromium context with a fresh profile, a window ``width`` px wide, in Rome's time zone."""
    profile = tempfile.mkdtemp(prefix="tm-chromium-")
    context = playwright_api.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": width, "height": 900},
        locale="en-US",
        timezone_id="Europe/Rome",
    )
    context.set_default_timeout(TIMEOUT_MS)
    # Deferred: Playwright is imported only when a browser test runs (conftest skips without it).
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def login(page, base, username):
    """Log in to the admin at ``base`` on ``page`` as ``username`` (the tests' password)."""
    page.goto(base + "/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(base + "/admin/")


def changelist_overflow(page) -> dict:
    """Measure the admin change list's table: ``{"scroll", "client", "outside"}``.

    ``scroll`` and ``client`` are the results box's scroll and client widths
    (scroll > client: a horizontal scroll bar); ``outside`` names the column
    headers whose right edge is past the box (hidden behind that scroll).
    """
    return page.evaluate(
        """() => {
            const results = document.querySelector('#changelist-form .results');
            const box = results.getBoundingClientRect();
            const cells = [...document.querySelectorAll('#result_list thead th')];
            return {
                scroll: results.scrollWidth, client: results.clientWidth,
                outside: cells.filter(th => th.getBoundingClientRect().right > box.right + 1)
                    .map(th => th.textContent.trim()),
            };
        }"""
    )

"""A small HTTP client for driving the admin of a real server as a browser would."""

import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from .scale import scaled

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ERRORS_RE = re.compile(r'<ul class="errorlist[^>]*>(.*?)</ul>', re.S)
#: The password of every user the tests create.
PASSWORD = "pw-for-tests"


@dataclass
class Response:
    status: int
    url: str
    text: str
    headers: dict = field(default_factory=dict)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class AdminClient:
    """Cookie-keeping client; ``follow=False`` returns 3xx responses as they are."""

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        cookies = urllib.request.HTTPCookieProcessor(self.jar)
        self.opener = urllib.request.build_opener(cookies)
        self.raw_opener = urllib.request.build_opener(cookies, _NoRedirect())

    def forget_messages(self) -> None:
        """Drop the admin's messages cookie, as a browser does by following a POST's redirect.

        The page the redirect leads to shows the messages and clears the
        cookie; a client that never follows it sends every message since
        back with each request (compressed, the cookie stays small: 163
        bytes for 30 Start messages), and Django decodes and encodes them
        all again each time (about 3 ms of CPU per request with 170
        messages, in-process): not what a person's Start costs.
        """
        for cookie in [c for c in self.jar if c.name == "messages"]:
            self.jar.clear(cookie.domain, cookie.path, cookie.name)

    def _open(self, request, follow):
        opener = self.opener if follow else self.raw_opener
        try:
            with opener.open(request, timeout=scaled(60)) as resp:
                text = resp.read().decode("utf-8", "replace")
                return Response(resp.status, resp.geturl(), text, dict(resp.headers.items()))
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", "replace")
            location = err.headers.get("Location") or request.full_url
            return Response(err.code, location, body, dict(err.headers.items()))

    def get(self, path: str, follow=True) -> Response:
        return self._open(urllib.request.Request(self.base + path), follow)

    def csrf_token(self) -> str:
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return cookie.value
        page = self.get("/admin/login/")
        match = CSRF_RE.search(page.text)
        return match.group(1) if match else ""

    def post(self, path: str, data=None, follow=True, csrf=True, headers=None) -> Response:
        """POST ``data`` (with the CSRF token unless ``csrf`` is false); ``headers`` are sent as well."""
        data = dict(data or {})
        if csrf:
            data.setdefault("csrfmiddlewaretoken", self.csrf_token())
        body = urllib.parse.urlencode(data, doseq=True).encode()
        request = urllib.request.Request(
            self.base + path,
            data=body,
            headers={"Referer": self.base + path, **(headers or {})},
            method="POST",
        )
        return self._open(request, follow)

    def login(self, username: str, password: str) -> Response:
        page = self.get("/admin/login/")
        token = CSRF_RE.search(page.text).group(1)
        resp = self.post(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password, "csrfmiddlewaretoken": token},
        )
        assert "/admin/login/" not in resp.url, "login failed for %s" % username
        return resp


def client_for(base_url: str, username: str, password: str = PASSWORD, language: str = "") -> AdminClient:
    """An AdminClient on ``base_url`` logged in as ``username``.

    ``language`` (e.g. "it") is sent as ``Accept-Language`` on every request:
    the admin then speaks it (LocaleMiddleware, tests/settings.py).
    """
    client = AdminClient(base_url)
    if language:
        for opener in (client.opener, client.raw_opener):
            opener.addheaders = [("Accept-Language", language)]
    client.login(username, password)
    return client


def form_errors(resp: Response) -> str:
    """The text of the error lists on a form page (HTML entities decoded)."""
    return html.unescape(" ".join(ERRORS_RE.findall(resp.text)))

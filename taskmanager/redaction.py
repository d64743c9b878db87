"""Secrets out of the stored log: ``redactor()`` once per run, then ``redact(text)`` for each line.

What a command prints is stored and shown to whoever may read its reports,
and sent in notices. So, where a run's text is stored (every log line, the
report's command line, end reason and progress message), these are replaced
by :data:`MARK` (``docs/security.rst``, "Secrets in logs"):

* the values of the project's secret settings: ``SECRET_KEY``,
  ``SECRET_KEY_FALLBACKS``, ``EMAIL_HOST_PASSWORD``, the passwords (and
  secret-named options) of ``DATABASES`` and ``CACHES``, the app's own
  webhook URL and Slack token, and the settings ``TASKMANAGER_REDACT_SETTINGS``
  names;
* the values of environment variables whose names look secret
  (:data:`SECRET_NAME_RE`);
* the password of any URL with credentials (``scheme://user:password@host``),
  signature and token parameters of signed URLs, ``Bearer`` tokens;
* whatever the project's ``TASKMANAGER_REDACT_PATTERNS`` (regular
  expressions) match.

Values shorter than :data:`MIN_SECRET_CHARS` are left alone: redacting "1"
or "dev" would blank half the log and hide nothing. Everything becomes one
compiled alternation (values longest first), searched only in a line that
holds one of them: the common line costs a few substring tests.

Building that (walking the settings, matching every environment variable's
name) cost about a tenth of a spooler's own Python per run, for the same
answer every time: :func:`redactor` keeps the last one built and hands it
out again while nothing it was built from can have changed, which is when

* no setting changed: settings change at run time through
  ``override_settings`` (and pytest-django's ``settings``), which send
  Django's ``setting_changed`` signal; every signal, whatever the setting
  (``TASKMANAGER_REDACT_SETTINGS`` may name any), drops the kept one, as
  Django drops its own caches of settings. Assigning ``settings.X`` by
  hand, which Django's documentation forbids, sends nothing: so the kept
  one also holds the very objects it read (each setting redaction reads,
  whole) and is built again when one of them is another object (a few
  microseconds). Only a value changed in place (an item of ``DATABASES``
  edited inside the same dict) would go unseen until a signal.
* the environment is the same: a process's environment changes only when
  its own code changes ``os.environ`` (a project's ``@spool`` function may),
  so the kept one is keyed on a copy of the environment, compared for
  equality with the current one at each call (a dict comparison of the
  encoded strings: about a microsecond, where matching every name costs a
  hundred times that). A changed, added or removed variable builds it anew.
  (``os.putenv`` bypasses ``os.environ``, which redaction never read.)

An ``environ`` passed explicitly is never kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping

from django.conf import settings
from django.core.signals import setting_changed

from .conf import app_settings

#: What stands in for a secret.
MARK = "[redacted]"
#: Shorter values are not treated as secrets.
MIN_SECRET_CHARS = 6
#: Names of environment variables (and of options inside DATABASES and CACHES) holding secrets.
SECRET_NAME_RE = re.compile(
    r"SECRET|PASSW|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|AUTH|DSN|DATABASE_URL|_KEY$|_PWD$", re.IGNORECASE
)
#: Project settings whose values are secrets (strings, or lists and dicts of them).
SECRET_SETTINGS = ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "EMAIL_HOST_PASSWORD")
#: The app's own secrets (``TASKMANAGER_`` settings): a webhook URL is a credential.
APP_SECRETS = ("NOTIFY_WEBHOOK_URL", "NOTIFY_SLACK_TOKEN")
#: Settings (dicts of dicts) whose secret-named keys hold secrets, and whose URLs may carry passwords.
NESTED_SETTINGS = ("DATABASES", "CACHES")
#: Query parameters of signed URLs and API links that carry a credential.
SECRET_PARAMS = (
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Signature",
    "X-Goog-Credential",
    "Signature",
    "sig",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "password",
    "secret",
)
# Each pattern's group 1 is kept, the rest of the match becomes MARK.
# scheme://user:password@ -> the password; user may be empty (redis://:pw@host).
# (From "://" on: a literal start is what lets the search skip along a line.)
_CREDENTIALS_RE = re.compile(r"(://[^\s:/@]*:)[^\s@/]+(?=@)")
_PARAMS_RE = re.compile(
    r"([?&;](?:%s)=)[^&;#\s]+" % "|".join(re.escape(p) for p in SECRET_PARAMS), re.IGNORECASE
)
_BEARER_RE = re.compile(r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/\-]+=*")


def _keep_prefix(match: re.Match) -> str:
    # (A function: Python 3.11 parses a "\g<1>" template again at every call.)
    return match.group(1) + MARK


def _url_passwords(text: str) -> list[str]:
    return [m.group(0)[len(m.group(1)) :] for m in _CREDENTIALS_RE.finditer(text)]


def _strings(value) -> Iterable[str]:
    """The strings in a setting's value (a string, or lists, tuples and dicts of them)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item)


def _nested_secrets(value) -> Iterable[str]:
    """Secret-named keys' values, at any depth of DATABASES / CACHES, and the passwords of their URLs."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and SECRET_NAME_RE.search(key):
                yield from _strings(item)
            else:
                yield from _nested_secrets(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _nested_secrets(item)
    elif isinstance(value, str):
        yield from _url_passwords(value)


def secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Return the secret values named by the settings and the environment (long enough to redact)."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    names = list(SECRET_SETTINGS) + list(app_settings.REDACT_SETTINGS or ())
    for name in names:
        found.update(_strings(getattr(settings, name, None)))
    for name in APP_SECRETS:
        found.update(_strings(getattr(app_settings, name)))
    for name in NESTED_SETTINGS:
        found.update(_nested_secrets(getattr(settings, name, None)))
    for name, value in environ.items():
        if SECRET_NAME_RE.search(name):
            found.add(value)
    # A secret that is a URL with a password: the password alone is one too
    # (printed apart, or in another form of the same URL).
    for value in list(found):
        found.update(_url_passwords(value))
    return {value for value in found if len(value.strip()) >= MIN_SECRET_CHARS}


def valid_patterns(patterns: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ``patterns`` into those that compile and messages about those that do not."""
    valid, errors = [], []
    for pattern in patterns or ():
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            errors.append("%r: %s" % (pattern, exc))
        else:
            valid.append(pattern)
    return valid, errors


def redactor(environ: Mapping[str, str] | None = None) -> tuple[Callable[[str], str], list[str]]:
    """Return ``(redact, errors)`` for this process's settings and environment (once per run).

    ``redact(text) -> text``; ``errors`` says which ``TASKMANAGER_REDACT_PATTERNS``
    entries are no regular expression (left out; check taskmanager.E001 reports
    them too). Without ``environ``, the last one built is returned again while
    no setting changed and ``os.environ`` is the same (see the module's docstring).
    """
    global _kept
    if environ is not None:
        return _build(environ)
    generation, current, read = _settings_generation, _environ_data(), _settings_read()
    kept = _kept
    if (
        kept is not None
        and kept[0] == generation
        and kept[1] == current
        and len(read) == len(kept[2])
        and all(new is old for new, old in zip(read, kept[2], strict=True))
    ):
        return kept[3], list(kept[4])
    # The copies are taken before the build: a change meanwhile differs from them.
    snapshot = dict(current)
    redact, errors = _build(os.environ)
    _kept = (generation, snapshot, read, redact, tuple(errors))  # one assignment: seen whole or not at all
    return redact, errors


def _settings_read() -> tuple:
    """The objects redaction reads from the settings (compared by identity with those it was built from)."""
    names = app_settings.REDACT_SETTINGS
    return (
        names,
        app_settings.REDACT_PATTERNS,
        *(getattr(app_settings, name) for name in APP_SECRETS),
        *(getattr(settings, name, None) for name in (*SECRET_SETTINGS, *NESTED_SETTINGS, *(names or ()))),
    )


# (settings generation, copy of the environment, settings read, redact, errors)
# of the last redactor() built from os.environ; dropped by any setting_changed signal.
_kept: tuple | None = None
_settings_generation = 0


def _forget(**kwargs) -> None:
    global _settings_generation, _kept
    _settings_generation += 1
    _kept = None


setting_changed.connect(_forget, dispatch_uid="taskmanager.redaction")


def _environ_data() -> Mapping:
    """``os.environ``'s own dict of encoded names and values (compared without decoding), or a copy."""
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else dict(os.environ)


def _build(environ: Mapping[str, str]) -> tuple[Callable[[str], str], list[str]]:
    patterns, errors = valid_patterns(app_settings.REDACT_PATTERNS)
    project = [re.compile(pattern) for pattern in patterns]
    values = tuple(sorted(secret_values(environ), key=lambda v: (-len(v), v)))  # longest first
    values_sub = re.compile("|".join(re.escape(v) for v in values)).sub if values else None
    credentials_sub, params_sub, bearer_sub = _CREDENTIALS_RE.sub, _PARAMS_RE.sub, _BEARER_RE.sub

    def redact(text: str) -> str:
        # Substring tests first: a regular expression scanning every line
        # costs more than storing it; most lines hold none of these.
        if not text:
            return text
        for value in values:
            if value in text:
                text = values_sub(MARK, text)
                break
        if "://" in text:
            text = credentials_sub(_keep_prefix, text)
        if "=" in text and ("?" in text or "&" in text or ";" in text):
            text = params_sub(_keep_prefix, text)
        if "earer" in text:
            text = bearer_sub(_keep_prefix, text)
        for pattern in project:
            text = pattern.sub(MARK, text)
        return text

    return redact, errors

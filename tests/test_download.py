"""The download cannot be forged (issue 14).

A command logging messages whose later lines look like the task manager's
own, run by the real uWSGI spooler: in the download they are continuation
lines, marked as such, whatever line break they use.
"""

import re

import pytest

from taskmanager import logstore

from .support.admin import run_to_end
from .support.reading import download

pytestmark = pytest.mark.django_db(transaction=True)

#: The start of each of the product's own lines in a download.
PRODUCT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ")


def test_download_marks_continuation_lines(server, admin_http, commands):
    _task, report = run_to_end(admin_http, commands, "forge", "tm_forge")
    body = download(admin_http, report)
    header, *lines = body.splitlines()  # every line break Python knows, as a text viewer may
    assert header.startswith("Log of forge @")
    product = [line for line in lines if PRODUCT_LINE.match(line)]
    continued = [line for line in lines if line.startswith(logstore.CONTINUATION)]
    assert len(product) + len(continued) == len(lines), [
        line for line in lines if line not in product and line not in continued
    ]
    # One product line per stored line, none of them the forged one.
    assert len(product) == report.log_lines.count()
    assert not [line for line in lines if line.startswith("2026-01-01")]
    assert logstore.CONTINUATION + "2026-01-01 00:00:00 ERROR [taskmanager] fake" in lines
    # Each of the 11 line breaks made one continuation line carrying the forged text.
    fake = logstore.CONTINUATION + "2026-01-01 00:00:00.000000 ERROR    taskmanager fake"
    assert continued.count(fake) >= 11


def test_format_line_marks_every_line_break():
    from datetime import datetime

    stamp = datetime(2026, 11, 30, 4, 12)
    text = "a\r\nb\rc\nd\x0be\x0cf\x1cg\x1dh\x1ei\x85j\u2028k\u2029l"
    line = logstore.format_line(stamp, 20, "stdout", text)
    assert line.endswith("\n") and line.count("\n") == 12
    first, *rest = line.splitlines()
    assert first == "2026-11-30 04:12:00.000000 INFO     stdout      a"
    assert rest == [logstore.CONTINUATION + letter for letter in "bcdefghijkl"]
    # A single line is left as it was.
    assert logstore.format_line(stamp, 20, "stdout", "plain | text") == (
        "2026-11-30 04:12:00.000000 INFO     stdout      plain | text\n"
    )

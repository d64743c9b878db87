"""Spool files no handler can read (issue 13, item 5), through a real uWSGI node.

A file with a non-UTF-8 value, with an unknown handler name, or of zero
bytes is moved aside once into ``<spool>/unreadable/`` with one log line,
the admin names it, and the spooler goes on serving this app's tasks and a
project's own ``uwsgidecorators`` ``@spool`` function (tests/testapp/spoolfuncs.py).
"""

import os
from pathlib import Path

import pytest

from taskmanager import spoolfiles

from .support.admin import add_task, press
from .support.spool import put_file
from .support.waits import finished_report, recovery_ticks, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_unreadable_spool_files_are_moved_aside_once(uwsgi_node, commands, tmp_path):
    node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1}, spooler_processes=1)
    spool = Path(node.spool_dir)
    ours = {b"ud_spool_func": spoolfiles.HANDLER_NAME.encode(), b"task": b"\xff\xfe", b"token": b"t\xe9"}
    bad = {
        put_file(spool, "test_not_utf8", spoolfiles.encode(ours)): "not UTF-8",
        put_file(
            spool, "test_unknown", spoolfiles.encode({b"ud_spool_func": b"no_such_function"})
        ): "unknown",
        put_file(spool, "test_no_handler", spoolfiles.encode({b"task": b"1"})): "no handler",
        put_file(spool, "test_empty", b"", age=120): "empty",
    }
    aside = spool / "unreadable"

    def all_moved():
        return all((aside / name).exists() and not (spool / name).exists() for name in bad)

    wait_for(all_moved, message="the unreadable files moved aside")
    recovery_ticks(node, 3)  # a few more scans and recovery passes
    log = node.log()
    for name in bad:
        ours_lines = [line for line in log.splitlines() if name in line and "taskmanager" in line]
        assert len(ours_lines) == 1, (name, ours_lines)
        assert "moved aside" in ours_lines[0]
    assert "Traceback" not in log
    assert sorted(os.listdir(aside)) == sorted(bad)

    # The admin names them (escaped).
    page = node.admin.get("/admin/taskmanager/task/").text
    assert "tm-unreadable-banner" in page
    for name in bad:
        assert name in page

    # The spooler goes on: a project's own @spool function, then a task of the app.
    marker = tmp_path / "marker"
    put_file(
        spool,
        "test_project_function",
        spoolfiles.encode(
            {b"ud_spool_func": b"testapp_marker", b"path": str(marker).encode(), b"ud_spool_ret": b"-2"}
        ),
    )
    wait_for(lambda: marker.exists() and marker.read_text() == "ran", message="the project's function")
    task = add_task(node.admin, commands, "after-unreadable", "tm_ok")
    press(node.admin, task, "start")
    assert finished_report(task).result == "OK"
    assert not (aside / (spoolfiles.PREFIX + "test_project_function")).exists()

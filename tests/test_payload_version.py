"""Rolling deploys (issue 15): spool entries carry a payload version, through a real uWSGI node.

A node meeting an entry of a version it does not know leaves it for a node
that knows it: the file is moved into ``<spool>/newer/`` with one log line,
the task is neither run nor consumed, and no scan retries it. An entry
without a version (written before versions existed) is version 1 and runs.
A node that knows the version (after the deploy) puts the file back at its
start and runs it.
"""

from pathlib import Path

import pytest

from taskmanager import spoolfiles
from taskmanager.models import Report, SpoolerHeartbeat, Task

from .support.objects import make_task
from .support.spool import node_name
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def recovery_passes(node, count: int) -> None:
    """Wait until the node's periodic recovery ran ``count`` more times (its heartbeat advanced)."""
    beats = SpoolerHeartbeat.objects.filter(node=node_name(node.spool_dir))
    for _ in range(count):
        last = beats.values_list("last_seen", flat=True).first()
        wait_for(
            lambda last=last: beats.values_list("last_seen", flat=True).first() != last,
            timeout=15,
            message="a recovery pass",
        )


def spooled_task(commands, node, name, token) -> Task:
    return make_task(
        commands,
        name,
        "tm_ok",
        status=Task.Status.SPOOLED,
        run_token=token,
        spooler_node=node_name(node.spool_dir),
    )


def test_payload_version_written_and_missing_read_as_one():
    entry = spoolfiles.make_entry(7, "tok", "start")
    assert entry[b"version"] == str(spoolfiles.PAYLOAD_VERSION).encode()
    assert spoolfiles.payload_version({b"task": b"7"}) == 1
    assert spoolfiles.payload_version({"version": "99"}) == 99
    assert spoolfiles.payload_version({b"version": b"x"}) is None
    assert spoolfiles.known_version({"task": "7"})
    assert not spoolfiles.known_version({"version": "99"})


def test_entry_of_an_unknown_version_is_left_for_a_node_that_knows_it(uwsgi_node, commands):
    settings = {"TASKMANAGER_RECOVERY_SECONDS": 1}
    node = uwsgi_node(settings=settings, spooler_processes=1)
    spool = Path(node.spool_dir)

    future = spooled_task(commands, node, "from-a-newer-node", "tok-v99")
    entry = spoolfiles.make_entry(future.pk, "tok-v99", "start")
    entry[b"version"] = b"99"
    path = Path(spoolfiles.write(str(spool), entry))
    Task.objects.filter(pk=future.pk).update(spooler_id=str(path))

    held = spool / spoolfiles.NEWER_DIRNAME / path.name
    wait_for(lambda: held.exists() and not path.exists(), message="the version 99 entry moved aside")
    recovery_passes(node, 3)  # more scans and recovery passes: no retry, no respool
    lines = [
        line for line in node.log().splitlines() if path.name in line and line.startswith("taskmanager:")
    ]
    assert len(lines) == 1, lines
    assert "version 99" in lines[0]
    future.refresh_from_db()
    assert future.status == Task.Status.SPOOLED
    assert future.run_token == "tok-v99"  # not respooled as lost
    assert not Report.objects.filter(task=future).exists()
    assert "Traceback" not in node.log()

    # An entry without a version (an older node's) is version 1: it runs.
    older = spooled_task(commands, node, "from-an-older-node", "tok-v1")
    entry = spoolfiles.make_entry(older.pk, "tok-v1", "start")
    del entry[b"version"]
    spoolfiles.write(str(spool), entry)
    assert finished_report(older).result == "OK"

    # After the deploy: a node that knows version 99 puts the entry back at its start and runs it.
    node.stop()
    Task.objects.filter(pk=future.pk).update(status=Task.Status.SPOOLED)
    newer = uwsgi_node(
        settings=settings, spooler_processes=1, spool_dir=spool, env={"TM_TEST_PAYLOAD_VERSION": "99"}
    )
    assert finished_report(future).result == "OK"
    assert not held.exists()
    assert "Traceback" not in newer.log()


def test_row_of_an_unknown_version_is_left_for_a_node_that_knows_it(uwsgi_node, commands):
    """A pending row queued by a newer node is neither taken nor run here; a known one is."""
    node = uwsgi_node(settings={"TASKMANAGER_RECOVERY_SECONDS": 1}, spooler_processes=1)
    # Spooled, of no node (queued through a web-only node): the take-over pass takes such a row at once.
    future = make_task(
        commands, "row-of-a-newer-node", "tm_ok", status=Task.Status.SPOOLED, run_token="row-v99"
    )
    Task.objects.filter(pk=future.pk).update(payload_version=99)
    recovery_passes(node, 3)
    future.refresh_from_db()
    assert (future.status, future.run_token, future.spooler_node) == (Task.Status.SPOOLED, "row-v99", "")
    assert not Report.objects.filter(task=future).exists()
    left = [line for line in node.log().splitlines() if "newer payload version" in line]
    assert left and "left 1 " in left[-1], node.log()[-3000:]
    assert len(left) <= 4  # at most one line per pass

    # A row of a newer version whose entry reaches this node: the claim consumes the entry without
    # running it and leaves the row as it is; the lost-entry respool leaves the row too.
    spool = Path(node.spool_dir)
    held = spooled_task(commands, node, "row-v99-with-an-entry", "row-v99-entry")
    Task.objects.filter(pk=held.pk).update(payload_version=99)
    path = Path(spoolfiles.write(str(spool), spoolfiles.make_entry(held.pk, "row-v99-entry", "start")))
    Task.objects.filter(pk=held.pk).update(spooler_id=str(path))
    wait_for(lambda: not path.exists(), message="the entry consumed")
    recovery_passes(node, 3)
    held.refresh_from_db()
    assert (held.status, held.run_token, held.spooler_id) == (Task.Status.SPOOLED, "row-v99-entry", str(path))
    assert not Report.objects.filter(task=held).exists()
    log = node.log()
    assert "task %s has a newer payload version: entry not run" % held.pk in log, log[-3000:]
    assert "recovery: left 1 pending task(s) of a newer payload version" in log, log[-3000:]

    # The same row of a version this node knows is taken and run.
    Task.objects.filter(pk=future.pk).update(payload_version=1)
    assert finished_report(future).result == "OK"
    assert "Traceback" not in node.log()

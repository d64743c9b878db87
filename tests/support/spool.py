"""Reading a spooler's directory: its spool files, decoded by taskmanager.spoolfiles.

uWSGI itself runs the files the app writes (every end-to-end test), and
test_end_to_end.py forges one byte by byte: the format is checked against
uWSGI there, so the tests read the files with the app's own decoder.
"""

import os
import socket
import time
from pathlib import Path

from taskmanager import spoolfiles


def node_name(spool_dir) -> str:
    """The node a spooler on ``spool_dir`` of this host records: "host:absolute spool dir"."""
    return "%s:%s" % (socket.gethostname(), os.path.abspath(spool_dir))


def spool_paths(directory) -> list[Path]:
    """The spool files in ``directory``, by name."""
    return sorted(Path(directory).glob(spoolfiles.PREFIX + "*"))


def spool_entries(directory) -> dict[str, dict]:
    """Map each spool file path in ``directory`` to its entry (dict of str).

    Files consumed or being written meanwhile are left out.
    """
    found = {}
    for path in spool_paths(directory):
        try:
            found[str(path)] = spoolfiles.read(str(path))
        except (OSError, spoolfiles.SpoolFileError):
            continue
    return found


def entries_of(directory, task) -> list[dict]:
    """The entries of the task's current token (ids may be reused between tests; tokens never)."""
    return [
        e
        for e in spool_entries(directory).values()
        if e["task"] == str(task.pk) and e["token"] == task.run_token
    ]


def tokens_by_task(directory) -> dict[int, list[str]]:
    """{task id: [token of each of its entries]} of the spool files in ``directory``."""
    tokens = {}
    for entry in spool_entries(directory).values():
        tokens.setdefault(int(entry["task"]), []).append(entry["token"])
    return tokens


def make_due(task) -> None:
    """Bring the pending run of ``task`` (a model instance) forward to now, as if its time had come.

    Its ``next_datetime`` (the claim never starts a run before it) and the
    ``at`` of its spool file (the file's mtime, which the spoolers compare
    with their clock) become now: a test starts a run "later" when it is
    ready, instead of racing a slot a few seconds ahead.
    """
    from django.utils import timezone  # Deferred: the helpers above need no Django.

    from taskmanager.models import Task

    task.refresh_from_db()
    now = timezone.now()
    Task.objects.filter(pk=task.pk, run_token=task.run_token).update(next_datetime=now)
    stamp = now.timestamp()
    os.utime(task.spooler_id, (stamp, stamp))


def spool_is_empty(directory, task_ids=None) -> bool:
    """No spool file is left in ``directory`` (only of ``task_ids``, when given).

    Another test's future entries may share the session's spool directory.
    """
    if task_ids is None:
        return not spool_paths(directory)
    return not any(int(e.get("task") or 0) in task_ids for e in spool_entries(directory).values())


def put_file(spool_dir: Path, name: str, data: bytes, age: float = 0) -> str:
    """Write a spool file atomically (under a name the spooler ignores, then renamed); return its name.

    ``age``: seconds its modification time is set back by.
    """
    name = spoolfiles.PREFIX + name
    tmp = Path(spool_dir) / (".tmp-" + name)
    tmp.write_bytes(data)
    if age:
        stamp = time.time() - age
        os.utime(tmp, (stamp, stamp))
    os.rename(tmp, Path(spool_dir) / name)
    return name


def file_writer(spool_dir: str):
    """A ``spool(task_id, token, trigger, at)`` function writing entries into ``spool_dir`` (as ``respool_tasks`` does)."""

    def spool(task_id, token, trigger, at):
        return spoolfiles.write(spool_dir, spoolfiles.make_entry(task_id, token, trigger, at), at)

    return spool

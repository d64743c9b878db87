"""uWSGI spool files and spooler nodes: the file format, liveness, writing one, node identity.

A spool file is one uwsgi packet: a 4-byte header (``modifier1`` = 17, the
body size as a little-endian ``uint16``, ``modifier2`` = 0) followed by
key/value pairs, each a little-endian ``uint16`` length and the bytes. uWSGI
names the file ``uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rand>_<sec>_<usec>``
directly in the spool directory (no temporary name, no later rename: see
``uwsgi_spool_request()`` in uWSGI's ``core/spooler.c``), sets its mtime to
``at`` when given, and deletes it once the handler returned ``SPOOL_OK``.
Its spoolers run every regular file whose name starts with
``uwsgi_spoolfile_on_`` and whose mtime is not in the future, at each scan of
the directory (every ``spooler-frequency`` seconds).

So an entry is *live* while its file exists in the node's spool directory,
and a process that is not part of uWSGI (the ``respool_tasks`` command) can
add an entry by writing such a file atomically.

A *node* is one spool directory on one host, named ``host:/abs/spool/dir``
(:func:`node_id`): tasks record the node holding their entry
(``Task.spooler_node``), spoolers their heartbeat under it. This module is a
leaf: it imports nothing from the app and no ORM.
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
import struct
import tempfile
from datetime import datetime

#: File name prefix the uWSGI spooler looks for.
PREFIX = "uwsgi_spoolfile_on_"
#: The ``ud_spool_func`` of the app's entries: the name ``uwsgidecorators``
#: dispatches on (the handler is registered under it by spooler/uwsgi_handler.py).
HANDLER_NAME = "taskmanager_run"
_MODIFIER1 = 17
#: Seconds an entry must still be from its ``at`` to be deleted (:func:`discard`):
#: no spooler scan opens it before then.
DISCARD_MARGIN_SECONDS = 5
_MAX_PACKET = 0xFFFF
#: The version of the entries this code writes, and the newest it runs (issue 15,
#: rolling deploys): an entry without a version is version 1. 2: a queued Run now
#: may carry one-off arguments in its row (Task.run_now_arguments), which a node
#: of version 1 would not see, running the task's own.
PAYLOAD_VERSION = 2
#: The subdirectory of a spool directory where entries of a newer version wait
#: for a node that knows it (not numeric: numeric ones are scanned as priorities).
NEWER_DIRNAME = "newer"


class SpoolFileError(ValueError):
    """A spool packet that cannot be built or parsed."""


def make_entry(task_id: int, token: str, trigger: str, at: datetime | None = None) -> dict[bytes, bytes]:
    """Return the spool dict of one run, as ``UwsgiBackend.spool()`` writes it.

    Only identifiers travel in the file (nothing pickled): the handler name
    ``uwsgidecorators`` dispatches on, the task id, the run token, the
    trigger, ``at`` (unix seconds, rounded *up*, so that uWSGI, which runs
    a file once ``time() >= at``, never starts it before the stored time),
    and the payload version (:data:`PAYLOAD_VERSION`).
    """
    result = {
        b"ud_spool_func": HANDLER_NAME.encode(),
        b"version": str(PAYLOAD_VERSION).encode(),
        b"task": str(task_id).encode(),
        b"token": token.encode(),
        b"trigger": trigger.encode(),
    }
    if at is not None:
        result[b"at"] = str(math.ceil(at.timestamp())).encode()
    return result


def payload_version(entry: dict) -> int | None:
    """Return the payload version of a spool dict (str or bytes keys): 1 when missing, None when unreadable."""
    value = entry.get("version", entry.get(b"version"))
    if value is None:
        return 1
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def known_version(entry: dict) -> bool:
    """Tell whether this code knows the payload version of a spool dict (see :func:`payload_version`)."""
    version = payload_version(entry)
    return version is not None and 1 <= version <= PAYLOAD_VERSION


def encode(entry: dict[bytes, bytes]) -> bytes:
    """Return the spool packet (header included) for a dict of byte strings.

    :raises SpoolFileError: when a key or value is not bytes or the packet
        would exceed 65,535 bytes (uWSGI truncates or refuses those).
    """
    body = bytearray()
    for key, value in entry.items():
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise SpoolFileError("spool keys and values must be bytes")
        for part in (key, value):
            body += struct.pack("<H", len(part)) + part
    if len(body) > _MAX_PACKET:
        raise SpoolFileError("spool packet larger than 64 KiB")
    return struct.pack("<BHB", _MODIFIER1, len(body), 0) + bytes(body)


def decode(data: bytes) -> dict[bytes, bytes]:
    """Return the key/value pairs of a spool packet (header included).

    :raises SpoolFileError: for a short or malformed packet.
    """
    if len(data) < 4:
        raise SpoolFileError("spool packet shorter than its header")
    _mod1, size, _mod2 = struct.unpack("<BHB", data[:4])
    body = data[4 : 4 + size]
    if len(body) != size:
        raise SpoolFileError("spool packet shorter than its declared size")
    result: dict[bytes, bytes] = {}
    pos = 0
    while pos < size:
        parts = []
        for _ in range(2):
            if pos + 2 > size:
                raise SpoolFileError("truncated spool packet")
            (length,) = struct.unpack("<H", body[pos : pos + 2])
            pos += 2
            if pos + length > size:
                raise SpoolFileError("truncated spool packet")
            parts.append(bytes(body[pos : pos + length]))
            pos += length
        result[parts[0]] = parts[1]
    return result


def read(path: str) -> dict[str, str]:
    """Return a spool file's entry as a dict of str (as the handler gets it).

    :raises OSError: when the file cannot be read (e.g. it was consumed).
    :raises SpoolFileError: when it is not a spool packet.
    """
    with open(path, "rb") as fh:
        data = fh.read(_MAX_PACKET + 4)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in decode(data).items()}


def is_live(path: str, spool_dir: str) -> bool:
    """Tell whether ``path`` is an entry still waiting in ``spool_dir``.

    True when ``path`` is a regular file directly inside ``spool_dir``
    (compared after resolving symbolic links) whose name uWSGI runs, or when
    that file waits in :data:`NEWER_DIRNAME` for a node that knows its version.
    """
    if not path or not spool_dir:
        return False
    directory, name = os.path.split(os.path.realpath(path))
    if directory != os.path.realpath(spool_dir) or not name.startswith(PREFIX):
        return False
    return os.path.isfile(path) or os.path.isfile(os.path.join(directory, NEWER_DIRNAME, name))


def write(spool_dir: str, entry: dict[bytes, bytes], at: datetime | None = None) -> str:
    """Add a spool entry to ``spool_dir`` from outside uWSGI; return its path.

    The packet is written under a temporary name the spooler ignores, its
    mtime set to ``at`` rounded up to a whole second (or left at "now"), then
    renamed into place, so a spooler never reads a half-written file. The
    spoolers find it at their next directory scan (no wake-up signal).

    :param at: aware datetime before which the entry must not run, or None.
    :raises OSError: when the directory is not writable.
    :raises SpoolFileError: for an entry too large or not made of bytes.
    """
    packet = encode(entry)
    host = socket.gethostname().replace("/", "_")
    fd, tmp = tempfile.mkstemp(prefix=".taskmanager-", dir=spool_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(packet)
            fh.flush()
            os.fsync(fh.fileno())
        if at is not None:
            stamp = math.ceil(at.timestamp())
            os.utime(tmp, (stamp, stamp))
        name = "%s%s_%d_taskmanager_%s" % (PREFIX, host, os.getpid(), os.path.basename(tmp)[13:])
        final = os.path.join(os.path.realpath(spool_dir), name)
        os.rename(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return final


def waiting_entries(
    spool_dir: str, not_before: float, after: str = "", limit: int = 500
) -> tuple[list[tuple[str, int, str]], str]:
    """Read a bounded batch of this app's entries due after ``not_before`` (unix seconds).

    Looks at most at ``limit`` spool file names, in name order after ``after``;
    returns ``([(path, task id, token)...], last name looked at)``, the name
    "" once the end of the directory was reached (the next batch starts over).
    """
    names = sorted(n for n in os.listdir(spool_dir) if n.startswith(PREFIX) and n > after)[:limit]
    found = []
    for name in names:
        path = os.path.join(spool_dir, name)
        try:
            if os.stat(path).st_mtime <= not_before:
                continue
            entry = read(path)
        except (OSError, SpoolFileError):
            continue
        if entry.get("ud_spool_func") == HANDLER_NAME and entry.get("task", "").isdigit():
            found.append((path, int(entry["task"]), entry.get("token", "")))
    return found, (names[-1] if len(names) == limit else "")


def due_entries(spool_dir: str, not_after: float) -> list[tuple[str, dict[str, str]]]:
    """Return (path, entry) of this app's entries due by ``not_after`` (unix seconds); later ones are only stat'ed."""
    found = []
    for name in os.listdir(spool_dir):
        if not name.startswith(PREFIX):
            continue
        path = os.path.join(spool_dir, name)
        try:
            if os.stat(path).st_mtime > not_after:
                continue
            entry = read(path)
        except (OSError, SpoolFileError):
            continue
        if entry.get("ud_spool_func") == HANDLER_NAME and entry.get("task", "").isdigit():
            found.append((path, entry))
    return found


def due_tokens(spool_dir: str, not_after: float) -> set[tuple[int, str]]:
    """Return the (task id, token) of this app's entries due by ``not_after`` (:func:`due_entries`)."""
    return {(int(entry["task"]), entry.get("token", "")) for _path, entry in due_entries(spool_dir, not_after)}


def discard(path: str, token: str, not_before: float) -> bool:
    """Delete this app's entry at ``path`` if it carries ``token`` and is due after ``not_before``.

    For superseded entries only (their token is no longer the task's). Never
    deletes a file a spooler may be running: one due after ``not_before``
    (unix seconds, take now + :data:`DISCARD_MARGIN_SECONDS`) is skipped by
    every scan until then, and the file is checked and unlinked under the
    fcntl lock uWSGI takes while it runs an entry (a file a spooler holds is
    left alone; one this holds is skipped by a spooler). Return whether it
    was deleted.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_mtime <= not_before:
            return False
        entry = decode(os.read(fd, _MAX_PACKET + 4))
        if entry.get(b"ud_spool_func") != HANDLER_NAME.encode() or entry.get(b"token") != token.encode():
            return False
        os.unlink(path)
        return True
    except (OSError, SpoolFileError):
        return False
    finally:
        os.close(fd)


def node_id(spool_dir: str, host: str | None = None) -> str:
    """Return the node string of ``spool_dir`` on ``host`` (default: this machine): ``host:/abs/dir``."""
    return "%s:%s" % (host or socket.gethostname(), os.path.abspath(spool_dir))


def split_node(node: str) -> tuple[str, str]:
    """Return the (host, spool directory) of a node string (the directory is "" without a colon)."""
    host, _sep, directory = node.partition(":")
    return host, directory


def node_matches(node: str, spool_dir: str, host: str | None = None) -> bool:
    """Tell whether a ``host:spool dir`` node string designates ``spool_dir`` on ``host``.

    Directories are compared after resolving symbolic links; ``host``
    defaults to this machine's host name.
    """
    node_host, sep, directory = node.partition(":")
    if not sep or node_host != (host or socket.gethostname()):
        return False
    return os.path.realpath(directory) == os.path.realpath(spool_dir)

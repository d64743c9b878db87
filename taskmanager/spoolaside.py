"""Spool files nobody can run: telling them, and moving them aside once.

A spool file whose packet is malformed, whose values are not UTF-8 or whose
``ud_spool_func`` names no registered function would be retried by every
spooler at every scan, for ever (only ``SPOOL_OK`` deletes a file). Such a
file is moved into :data:`DIRNAME`, a subdirectory of the spool directory
whose name is not numeric (numeric ones are scanned as priorities), where
the admin lists it (``{% spooler_banner %}``) and nothing runs it.

Two ways there: the spooler's dispatcher (``spooler/uwsgi_handler.py``) for a
file that reaches Python, by hard link (uWSGI then deletes the original, as
after any ``SPOOL_OK``); and the periodic recovery (:func:`sweep`) for files
that never do (zero bytes, a broken header), by rename under uWSGI's lock.
Entries of a payload version newer than this code's wait in ``newer/``
(:data:`~taskmanager.spoolfiles.NEWER_DIRNAME`) the same way, by hard link,
until a spooler that knows it puts them back at its start
(:func:`release_newer`). A leaf module: nothing of the app, no ORM.
"""

from __future__ import annotations

import fcntl
import os
import time

from .spoolfiles import _MAX_PACKET, NEWER_DIRNAME, PREFIX, SpoolFileError, decode, known_version, read

#: The subdirectory of a spool directory unreadable files are moved into.
DIRNAME = "unreadable"
#: Seconds a file must be old (its mtime) before the periodic pass moves it aside.
MIN_AGE_SECONDS = 60
#: Keys of a ``uwsgidecorators`` entry that hold pickles, not text.
_PICKLED = (b"args", b"kwargs")


def problem(entry: dict, known) -> str:
    """Why a decoded spool dict (bytes keys and values) cannot be run, or "".

    ``known`` tells whether a ``ud_spool_func`` name is registered.
    """
    try:
        texts = {
            k.decode(): v.decode() for k, v in entry.items() if k not in _PICKLED and isinstance(v, bytes)
        }
    except (UnicodeDecodeError, AttributeError):
        return "a key or value is not UTF-8"
    name = texts.get("ud_spool_func")
    if not name:
        return "no handler name (ud_spool_func)"
    if not known(name):
        return "unknown handler name %r" % name
    return ""


def packet_problem(path: str) -> str:
    """Why the file at ``path`` is not a spool packet (empty, broken header or body), or ""."""
    with open(path, "rb") as fh:
        data = fh.read(_MAX_PACKET + 4)
    if not data:
        return "empty file"
    try:
        decode(data)
    except SpoolFileError as exc:
        return str(exc)
    return ""


def _target(spool_dir: str, name: str, dirname: str = DIRNAME) -> str:
    directory = os.path.join(spool_dir, dirname)
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, os.path.basename(name))


def keep_copy(spool_dir: str, path: str, dirname: str = DIRNAME) -> str:
    """Hard-link the file at ``path`` into :data:`DIRNAME` (or ``dirname``); return the new path.

    For the dispatcher, which then returns ``SPOOL_OK`` so that uWSGI deletes
    the original (it kills the spooler when that file is already gone).
    """
    target = _target(spool_dir, path, dirname)
    try:
        os.link(path, target)
    except FileExistsError:
        pass
    return target


def sweep(spool_dir: str, known=None, now: float | None = None) -> list[tuple[str, str]]:
    """Move aside the files of ``spool_dir`` no spooler can run, older than MIN_AGE_SECONDS.

    A file a spooler holds (uWSGI's fcntl lock) is left alone. Readable
    packets are left to the dispatcher, unless ``known`` is given and
    :func:`problem` finds one. Return ``[(file name, reason)]`` moved.
    """
    cutoff = (time.time() if now is None else now) - MIN_AGE_SECONDS
    moved = []
    for name in sorted(os.listdir(spool_dir)):
        path = os.path.join(spool_dir, name)
        try:
            if not name.startswith(PREFIX) or os.lstat(path).st_mtime > cutoff:
                continue
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            reason = packet_problem(path)
            if not reason and known is not None:
                reason = problem(decode(os.read(fd, _MAX_PACKET + 4)), known)
            if reason:
                os.rename(path, _target(spool_dir, name))
                moved.append((name, reason))
        except OSError:
            continue
        finally:
            os.close(fd)
    return moved


def moved_aside(spool_dir: str) -> list[str]:
    """The names of the files moved aside in ``spool_dir``, oldest first."""
    directory = os.path.join(spool_dir, DIRNAME)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    paths = [os.path.join(directory, n) for n in names]
    return [
        os.path.basename(p)
        for p in sorted(paths, key=lambda p: os.path.getmtime(p) if os.path.exists(p) else 0)
    ]


def release_newer(spool_dir: str) -> list[str]:
    """Put back into ``spool_dir`` the entries waiting in ``newer/`` whose payload version this code knows.

    At a spooler's start, after a deploy: the entries a node of an older
    version left there run now. Return the names put back.
    """
    directory = os.path.join(spool_dir, NEWER_DIRNAME)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    back = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            if known_version(read(path)):
                os.rename(path, os.path.join(spool_dir, name))
                back.append(name)
        except (OSError, SpoolFileError):
            continue
    return back

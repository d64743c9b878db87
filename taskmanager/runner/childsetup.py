"""A run's child's process setup, the part that needs no descriptor of the run (issue 17).

Signals as a shell would give them, fd 0 on ``/dev/null``, the standard
stream objects, the interpreter path, the log capture (a record writer whose descriptor is the run's record
pipe once there is a run). A fork server's spare child does it while it
waits (:mod:`.spare`), so that after the hand-over only the run's pipes are
put in place (:func:`point_at`) and the child is ready for its release by
the time the claim has committed (the start latency); a child forked for
its run does it all at once (:func:`.child_main.child_main`). The working
directory is not part of it: its path is looked up at the run (a directory
replaced while a spare waited is the run's, as for any child). Nothing here
touches the database.
"""

from __future__ import annotations

import os
import signal
import sys

from django.conf import settings

from .. import logcapture, processes, progress
from ..conf import app_settings

RESET_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGPIPE,
    signal.SIGSEGV,
    signal.SIGFPE,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGTSTP,
    signal.SIGXFSZ,
)


def working_dir() -> str:
    """The directory commands run in: TASKMANAGER_WORKING_DIR, else BASE_DIR, else the cwd at import."""
    configured = app_settings.WORKING_DIR or getattr(settings, "BASE_DIR", None)
    return str(configured) if configured else _STARTUP_CWD


_STARTUP_CWD = os.getcwd()


class Prepared:
    """What :func:`prepare_process` set up: the record writer (its fd not yet the run's) and a warning for the log."""

    def __init__(self, writer: logcapture.RecordWriter, level_warning: str):
        self.writer = writer
        self.level_warning = level_warning


def prepare_process(out_w: int | None = None, err_w: int | None = None) -> Prepared:
    """The child's setup that needs no descriptor of the run; see the module docstring.

    Signals as a shell would give them, fd 0 on ``/dev/null``, fd 1 and 2 on
    the run's pipes ``out_w`` and ``err_w`` (closed here), the standard
    stream objects on fd 0-2, the interpreter path,
    the log capture with a record writer whose descriptor is set at the
    hand-over. A spare, which has no run yet, gives no pipes: its stream
    objects are made while fd 1 and 2 designate a pipe of its own, as a
    run's are made on its pipes (Python asks a file whether it can seek, and
    where it is, once, when the object is made: on the uWSGI log they would
    say "seekable"), then fd 1 and 2 are the fork server's again until
    :func:`.child_main.child_main` points them at the run's.
    """
    # uWSGI catches or ignores these in its processes; the command gets
    # the defaults a shell would give it (SIGSEGV must kill, not hang).
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if out_w is not None and err_w is not None:
        point_at(out_w, err_w)
        _open_streams()
    else:
        kept = os.dup(1), os.dup(2)
        placeholder_r, placeholder_w = os.pipe()
        os.close(placeholder_r)
        point_at(placeholder_w, os.dup(placeholder_w))
        _open_streams()
        # Until the hand-over, fd 1 and 2 are the fork server's again: what the
        # spare might print (an error before its run) reaches the uWSGI log.
        point_at(*kept)
    # sys.executable is the uwsgi binary here: commands that start Python
    # (subprocess, multiprocessing "spawn") need the interpreter.
    processes.use_python_executable()
    writer = logcapture.RecordWriter(-1)
    level, warning = run_log_level()
    logcapture.install_logging_capture(writer, level)
    progress.attach(writer)
    return Prepared(writer, warning)


def _open_streams() -> None:
    """The standard stream objects, on fd 0-2 (fd 1 and 2 must be pipes: see :func:`prepare_process`)."""
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    sys.stdin = open(0, closefd=False)


def point_at(out_w: int, err_w: int) -> None:
    """Make fd 1 and fd 2 the descriptors ``out_w`` and ``err_w``, and close those."""
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (out_w, err_w):
        os.close(fd)


def run_log_level() -> tuple[int, str]:
    """Return the level ``TASKMANAGER_LOG_LEVEL`` names, and "" ; INFO and a warning for the log if it names none.

    uWSGI runs no system checks (taskmanager.E001 reports the value in
    ``manage.py check``): the run goes on, with the warning among its lines.
    """
    value = app_settings.LOG_LEVEL
    level = logcapture.capture_level(value)
    if level is None:
        return logcapture.INFO, (
            "TASKMANAGER_LOG_LEVEL is %r, which is no logging level: records are captured from INFO "
            "(system check taskmanager.E001)." % (value,)
        )
    return level, ""

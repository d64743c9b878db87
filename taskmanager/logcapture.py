"""Level-aware capture of what a management command writes.

The command runs in a forked child. Three pipes lead back to the supervising
spooler process (see :mod:`taskmanager.runner`):

* file descriptors 1 and 2 of the child (``print``, ``sys.stdout``,
  ``sys.stderr``, Python warnings, subprocesses), read as raw bytes and split
  into lines by :class:`LineBuffer`;
* a *record pipe* carrying one JSON array per line,
  ``[unix_time_us, level, stream, text]`` (time in integer microseconds),
  for what has a known level: the
  command's ``self.stdout`` / ``self.stderr`` (:class:`CommandOutput`) and
  the ``logging`` records (:func:`install_logging_capture`: loggers whose
  level comes from the root logger from ``TASKMANAGER_LOG_LEVEL``, others from
  their own level). Streams whose
  name starts with ``_`` are messages to the supervisor (the run's outcome,
  progress), never log lines.

Levels (numbers as in :mod:`logging`; NOTICE and SUCCESS sit between INFO and
WARNING, so they never count as warnings):

=========================================  ==============================
what                                        level
=========================================  ==============================
``logging`` record                          its own level
``self.style.ERROR`` / ``ERROR_OUTPUT``     ERROR (40)
``self.style.WARNING``                      WARNING (30)
``self.style.SUCCESS``                      SUCCESS (25)
``self.style.NOTICE``                       NOTICE (22)
plain ``self.stdout``                       INFO (20)
plain ``self.stderr``                       ERROR (40), as Django styles it
``print`` / fd 1 / subprocess stdout        INFO (20)
``sys.stderr`` / fd 2 / subprocess stderr   WARNING (30)
/ Python warnings
=========================================  ==============================

A line styled with ``self.style.*`` takes the highest level of its styled
parts, whatever stream it was written to (also ``print(self.style.ERROR(..))``
on fd 1); a style spanning several lines applies to each of them.

Text is normalised before storage (:func:`clean_text`): invalid UTF-8, lone
surrogates and NUL become U+FFFD (PostgreSQL rejects NUL), ANSI escape
sequences (colours, cursor moves) are removed, a carriage return not followed
by a newline keeps only what was written after it (as a terminal shows
progress output), and a line longer than :data:`MAX_LINE_CHARS` is stored as
several consecutive lines.
"""

from __future__ import annotations

import codecs
import fcntl
import io
import json
import logging
import os
import re
import threading
import time
from json.encoder import encode_basestring

from django.core.management.color import Style
from django.utils import termcolors

DEBUG, INFO, NOTICE, SUCCESS, WARNING, ERROR, CRITICAL = 10, 20, 22, 25, 30, 40, 50

STDOUT, STDERR, LOGGING, SYSTEM = "stdout", "stderr", "logging", "taskmanager"
#: The child's outcome ("exception: ValueError") travels on the record pipe
#: under this stream name; it never becomes a log line.
OUTCOME_STREAM = "_outcome"
#: A reused child (``TASKMANAGER_RUNS_PER_CHILD``) says under this stream name
#: that its run ended, with its exit code, and that it waits for the next one.
RUN_END_STREAM = "_run_end"

#: Longest line stored as one row, in characters; a longer one becomes several rows.
MAX_LINE_CHARS = 1024 * 1024

#: Longest record-pipe line kept whole, in bytes: a record's text is at most
#: MAX_LINE_CHARS characters, each at most 6 bytes once JSON-escaped.
MAX_RECORD_BYTES = 6 * MAX_LINE_CHARS + 1024

#: Bytes asked of the kernel for each capture pipe (Linux caps unprivileged
#: processes at /proc/sys/fs/pipe-max-size, 1 MiB by default); a larger pipe
#: lets the child run ahead while the supervisor writes a batch.
PIPE_SIZE = 1024 * 1024
#: Bytes read from a pipe at once by the supervisor.
READ_SIZE = 1024 * 1024
#: A read shorter than this (bytes) makes the supervisor pause READ_PAUSE
#: seconds before reading again, so that lines arrive in batches.
SMALL_READ = 64 * 1024
READ_PAUSE = 0.005

# Error handler turning what UTF-8 cannot encode (lone surrogates, e.g. from
# undecodable file names) into U+FFFD, like invalid bytes on the way in.
_FFFD = "taskmanager-fffd"
# (An encoder's replacement must be bytes when not ASCII.)
codecs.register_error(_FFFD, lambda exc: ("\ufffd".encode() * (exc.end - exc.start), exc.end))

# An OSC escape sequence with a private number: harmless if it ever reaches
# a terminal, and unlike colours it survives a non-tty stdout.
_MARK_PREFIX = "\x1b]7001;"
_MARK = _MARK_PREFIX + "%s\x07"
_MARK_RE = re.compile("\x1b\\]7001;([A-Z_]*)\x07")
# CSI sequences (colours, cursor moves), other OSC sequences, two-byte escapes.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")

_STYLE_LEVELS = {
    "ERROR": ERROR,
    "ERROR_OUTPUT": ERROR,
    "HTTP_SERVER_ERROR": ERROR,
    "WARNING": WARNING,
    "HTTP_NOT_FOUND": WARNING,
    "HTTP_BAD_REQUEST": WARNING,
    "SUCCESS": SUCCESS,
    "NOTICE": NOTICE,
}


def severity(level: int) -> int:
    """Return the filter class of ``level``: 0 below WARNING, 1 WARNING up to ERROR, 2 ERROR and above."""
    return 2 if level >= ERROR else 1 if level >= WARNING else 0


_LEVEL_NAMES = {NOTICE: "NOTICE", SUCCESS: "SUCCESS"}


def level_name(level: int) -> str:
    """Return the name of ``level`` (``logging``'s names plus NOTICE and SUCCESS)."""
    name = _LEVEL_NAMES.get(level)
    if name is None:
        name = _LEVEL_NAMES[level] = logging.getLevelName(level)
    return name


# -- styles and their markers ---------------------------------------------------
def level_style() -> Style:
    """Return a ``Style`` whose roles mark text with their level instead of colours."""
    style = Style()
    for role in termcolors.PALETTES[termcolors.NOCOLOR_PALETTE]:
        if role in _STYLE_LEVELS:

            def mark(text, role=role):
                return _MARK % role + str(text) + _MARK % ""

        else:

            def mark(text):
                return text

        setattr(style, role, mark)
    return style


class LevelMarks:
    """Read the level markers of one stream's lines, remembering a style left open.

    Django styles a whole message, ending included, so the closing marker of
    ``self.stdout.write(text, style_func=...)`` lands on the next line; and a
    styled multi-line message opens on one line and closes lines later.
    """

    __slots__ = ("open",)

    def __init__(self):
        self.open: int | None = None  # level of a style still open at the end of the last line

    def split(self, text: str, default: int) -> tuple[int, str]:
        """Return (level, text without markers) for the next line of the stream.

        The level is the highest level of the styled parts of the line, or
        ``default`` when no visible text is styled.
        """
        if self.open is None and _MARK_PREFIX not in text:
            return default, text
        current = self.open
        found = None
        pos = 0
        for match in _MARK_RE.finditer(text):
            if current is not None and match.start() > pos and (found is None or current > found):
                found = current
            role = match.group(1)
            current = _STYLE_LEVELS.get(role) if role else None
            pos = match.end()
        if current is not None and len(text) > pos and (found is None or current > found):
            found = current
        self.open = current
        return (default if found is None else found), _MARK_RE.sub("", text)


def split_level(text: str, default: int) -> tuple[int, str]:
    """Return (level, text without markers) for one line read on its own."""
    return LevelMarks().split(text, default)


def has_marks(text: str) -> bool:
    return _MARK_PREFIX in text


# -- text normalisation ---------------------------------------------------------
def clean_text(text: str) -> str:
    """Return ``text`` fit for every database and for reading.

    ANSI escape sequences go; NUL and lone surrogates become U+FFFD. Lengths
    are left alone (see :func:`split_long`).
    """
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", _FFFD).decode("utf-8")
    return text


def split_long(text: str, limit: int = MAX_LINE_CHARS) -> list[str]:
    """Return ``text`` cut in pieces of at most ``limit`` characters (one piece if short)."""
    if len(text) <= limit:
        return [text]
    return [text[i : i + limit] for i in range(0, len(text), limit)]


def last_overwrite(line: str) -> str:
    """Return what a terminal shows of ``line``: the text after its last carriage return.

    A trailing ``\\r`` (as in ``\\r\\n`` line ends) does not count.
    """
    line = line.rstrip("\r")
    cut = line.rfind("\r")
    return line[cut + 1 :] if cut >= 0 else line


def decode(data: bytes) -> str:
    """Decode bytes as UTF-8, turning invalid sequences into U+FFFD."""
    return data.decode("utf-8", errors="replace")


def _utf8_cut(data: bytes | bytearray, limit: int) -> int:
    """Return a cut position <= ``limit`` that does not split a UTF-8 sequence."""
    cut = limit
    # Back off over continuation bytes (10xxxxxx), at most 3 of them.
    while cut > limit - 3 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


class LineBuffer:
    """Split a byte stream into decoded lines, with terminal-like carriage returns.

    ``feed()`` returns the lines completed by a chunk; ``close()`` the rest.
    A ``\\r`` not followed by ``\\n`` drops what came before it on the line
    (as a terminal overwrites it), so progress bars keep memory flat and show
    as their last state. The pending part of a line longer than
    ``max_bytes`` is emitted in pieces (cut between UTF-8 sequences), so
    memory stays bounded whatever the stream holds.
    """

    def __init__(self, max_bytes: int = MAX_LINE_CHARS):
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        nl = data.rfind(b"\n")
        if nl < 0:
            self._buf += data
            return self._bound()
        if self._buf:
            self._buf += data[:nl]
            head = bytes(self._buf)
        else:
            head = data[:nl]
        self._buf = bytearray(data[nl + 1 :])
        text = decode(head)
        lines = text.split("\n")
        if "\r" in text:
            lines = [last_overwrite(line) if "\r" in line else line for line in lines]
        if self._buf:
            lines += self._bound()
        return lines

    def close(self) -> list[str]:
        rest, self._buf = bytes(self._buf), bytearray()
        return [last_overwrite(decode(rest))] if rest else []

    def _bound(self) -> list[str]:
        buf = self._buf
        # Keep only the text after the last carriage return that has text
        # after it (a final "\r" may be the first half of "\r\n").
        cr = buf.rfind(b"\r", 0, len(buf) - 1)
        if cr >= 0:
            del buf[: cr + 1]
        pieces = []
        while len(buf) > self.max_bytes:
            cut = _utf8_cut(buf, self.max_bytes)
            pieces.append(decode(bytes(buf[:cut])))
            del buf[:cut]
        return pieces


# -- the child's side -----------------------------------------------------------
def enlarge_pipe(fd: int, size: int = PIPE_SIZE) -> None:
    """Ask Linux for a pipe buffer of ``size`` bytes; keep the default if refused."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except OSError:
        pass


class RecordWriter:
    """Write level-tagged records to the record pipe (child side, thread-safe).

    Each record is one ``os.write`` of one line, so it is in the pipe (and
    survives the child being killed) as soon as ``write()`` returns; a write
    blocks while the pipe is full, which keeps the child's memory flat.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()

    def write(self, level: int, stream: str, text: str) -> None:
        """Send one record; ``text`` is one line (or one logging record) of any length."""
        # encode_basestring is json's C string encoder: the same JSON as
        # json.dumps, at a fraction of its cost per call; an integer time
        # formats several times faster than a float's shortest repr.
        data = "[%d,%d,%s,%s]\n" % (
            time.time_ns() // 1000,
            level,
            encode_basestring(stream),
            encode_basestring(text),
        )
        data = data.encode("utf-8", _FFFD)
        with self._lock:
            written = os.write(self.fd, data)
            while written < len(data):
                data = data[written:]
                written = os.write(self.fd, data)


def decode_records(lines: list[str]) -> list[list]:
    """Decode record-pipe lines into ``[unix_time_us, level, stream, text]`` lists.

    One ``json.loads`` for the whole list; if any line is malformed they are
    decoded one by one and a malformed one becomes a WARNING line of stream
    "stderr" holding the raw text (nothing is dropped silently).
    """
    if not lines:
        return []
    try:
        return json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        pass
    records = []
    for line in lines:
        try:
            ts, level, stream, text = json.loads(line)
            records.append([int(ts), int(level), str(stream), str(text)])
        except (ValueError, TypeError):
            if line:
                records.append([time.time_ns() // 1000, WARNING, STDERR, line])
    return records


class CommandOutput(io.TextIOBase):
    """A text stream for a command's ``self.stdout`` / ``self.stderr``.

    Lines go to the record pipe with the level of their style (see
    :class:`LevelMarks`) or ``default_level``. Text not ended by a newline
    waits for the rest of its line (``close_line()`` sends it at the end).
    """

    def __init__(self, writer: RecordWriter, stream: str, default_level: int):
        self.writer = writer
        self.stream = stream
        self.default_level = default_level
        self.marks = LevelMarks()
        self._pending = ""

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        text = str(text)
        size = len(text)
        if self._pending:
            text = self._pending + text
        if "\n" not in text:
            self._pending = text
            if "\r" in text or len(text) > MAX_LINE_CHARS:
                self._bound()
            return size
        *lines, self._pending = text.split("\n")
        for line in lines:
            self._emit(line)
        if self._pending and ("\r" in self._pending or len(self._pending) > MAX_LINE_CHARS):
            self._bound()
        return size

    def flush(self):
        pass

    def close_line(self) -> None:
        """Send the text written after the last newline, if any."""
        if self._pending:
            pending, self._pending = self._pending, ""
            self._emit(pending, final=True)

    def _bound(self) -> None:
        pending = self._pending
        cr = pending.rfind("\r", 0, len(pending) - 1)
        if cr >= 0:
            pending = pending[cr + 1 :]
        while len(pending) > MAX_LINE_CHARS:
            self._emit(pending[:MAX_LINE_CHARS])
            pending = pending[MAX_LINE_CHARS:]
        self._pending = pending

    def _emit(self, line: str, final: bool = False) -> None:
        marked = _MARK_PREFIX in line
        level, line = self.marks.split(line, self.default_level)
        if "\r" in line:
            line = last_overwrite(line)
        if final and marked and not line:
            return  # only the closing marker of a style that ended with the output
        self.writer.write(level, self.stream, line)


# -- logging --------------------------------------------------------------------
def capture_level(value) -> int | None:
    """Return the level ``value`` names (``TASKMANAGER_LOG_LEVEL``), or None if it names none.

    A level name of :mod:`logging` (``"INFO"``, any case, or one the project
    registered with ``logging.addLevelName``) or a number of at least 0.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        return logging.getLevelNamesMapping().get(value.strip().upper())
    return None


def inherits_root_level(logger: logging.Logger) -> bool:
    """Whether ``logger``'s level comes from the root logger (it and its ancestors have none)."""
    while logger.level == logging.NOTSET and logger.parent is not None:
        logger = logger.parent
    return logger is logging.root


def install_logging_capture(writer: RecordWriter, level: int = INFO) -> None:
    """Send logging records to ``writer`` once; keep the project's handlers as they were.

    Loggers whose level comes from the root logger (a module's
    ``getLogger(__name__)`` in a project without ``LOGGING``, where the root
    stays at WARNING) are captured from ``level`` (``TASKMANAGER_LOG_LEVEL``):
    their effective level becomes the lower of the root's and ``level``. A
    logger with a level of its own, or below an ancestor with one, keeps it
    and is captured from it. The records this lets through that the
    project's level would have refused reach no handler, only the capture:
    every handler receives exactly the records it received before, and the
    root logger's level stays what the project set (read live, so a command
    that changes it is obeyed). A filter on the logger itself sees them too,
    and decides whether they are captured, as for any record.

    ``Logger.callHandlers`` runs once per record, on the logger the record
    was logged to, after that logger's level, ``disabled`` flag and filters
    let it through and whatever ``propagate`` says; wrapping it sees each
    record exactly once, with its level. Handlers writing to the console
    (``StreamHandler`` on fd 1 or 2, including logging's last resort) are
    muted: their text would come back through the captured descriptors as a
    second copy. Other handlers of the project's LOGGING (files, mail) still
    run. Only for the forked child, which exits after the command.
    """
    formatter = _FORMATTER
    original_effective_level = logging.Logger.getEffectiveLevel
    original_call_handlers = logging.Logger.callHandlers

    def effective_level(self):
        if inherits_root_level(self):
            return min(logging.root.level, level)
        return original_effective_level(self)

    def call_handlers(self, record):
        levelno = record.levelno
        # Only a record below one of the two thresholds needs its logger's lineage.
        inherits = (levelno < level or levelno < logging.root.level) and inherits_root_level(self)
        if not (inherits and levelno < level):
            try:
                text = record.getMessage()
                if record.exc_info:
                    text += "\n" + formatter.formatException(record.exc_info)
                elif record.exc_text:
                    text += "\n" + record.exc_text
                if record.stack_info:
                    text += "\n" + formatter.formatStack(record.stack_info)
                if _MARK_PREFIX in text:
                    text = _MARK_RE.sub("", text)
                for piece in split_long(text):
                    writer.write(levelno, LOGGING, piece)
            except Exception:  # noqa: BLE001, S110 - logging must never break the command
                pass
        if inherits and levelno < logging.root.level:
            return None  # the project's level refuses it: for the capture only
        return original_call_handlers(self, record)

    logging.Logger.getEffectiveLevel = effective_level
    logging.Logger.callHandlers = call_handlers
    _answer_afresh()

    original_emit = logging.StreamHandler.emit

    def emit(self, record):
        if not isinstance(self, logging.FileHandler) and _writes_to_console(self):
            return None
        return original_emit(self, record)

    logging.StreamHandler.emit = emit


# Formats the tracebacks and stacks of captured records; built at import (in the
# fork server, for all its children) rather than in each child.
_FORMATTER = logging.Formatter()


def _answer_afresh() -> None:
    """Make ``Logger.isEnabledFor`` answer from a cache of this process's own, empty now.

    Each logger caches its answers (``Logger._cache``), filled by the
    spooler process before the fork with the levels of before the capture.
    Emptying them (what ``setLevel`` does) would write on every logger of
    the project, a copy-on-write page fault each in a forked child; the
    answers come from a new cache instead, emptied whenever logging empties
    its own (a level set, ``logging.disable``), with the same answers.
    """
    answers: dict = {}
    original_clear_cache = logging.Manager._clear_cache

    def is_enabled_for(self, level):
        if self.disabled:
            return False
        try:
            return answers[self, level]
        except KeyError:
            with logging._lock:
                enabled = answers[self, level] = (
                    self.manager.disable < level and level >= self.getEffectiveLevel()
                )
            return enabled

    def clear_cache(self):
        with logging._lock:
            answers.clear()
            original_clear_cache(self)

    logging.Logger.isEnabledFor = is_enabled_for
    logging.Manager._clear_cache = clear_cache


def _writes_to_console(handler) -> bool:
    try:
        return handler.stream.fileno() in (1, 2)
    except (AttributeError, OSError, ValueError):
        return False

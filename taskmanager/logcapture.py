"""Level-aware capture of what a management command writes.

The command runs in a forked child. Three pipes lead back to the supervising
spooler process:

* file descriptor 1 and 2 of the child (``print``, ``sys.stdout``,
  ``sys.stderr``, subprocesses), read as raw bytes and split into lines;
* a *record pipe* carrying one JSON array per line,
  ``[unix_time, level, stream, text]``, for what has a known level:
  ``self.stdout`` / ``self.stderr`` of the command and every ``logging``
  record.

Levels (numbers as in :mod:`logging`; NOTICE and SUCCESS sit between INFO and
WARNING, so they never count as warnings):

=====================================  ===========
what                                    level
=====================================  ===========
``logging`` record                      its own level
``self.style.ERROR`` / ``ERROR_OUTPUT`` ERROR (40)
``self.style.WARNING``                  WARNING (30)
``self.style.SUCCESS``                  SUCCESS (25)
``self.style.NOTICE``                   NOTICE (22)
plain ``self.stdout``                   INFO (20)
plain ``self.stderr``                   ERROR (40), as Django styles it
``print`` / fd 1 / subprocess stdout    INFO (20)
``sys.stderr`` / fd 2 / subprocess
stderr / Python warnings                WARNING (30)
=====================================  ===========
"""

import io
import json
import logging
import os
import re
import threading
import time

from django.core.management.color import Style
from django.utils import termcolors

DEBUG, INFO, NOTICE, SUCCESS, WARNING, ERROR, CRITICAL = 10, 20, 22, 25, 30, 40, 50

STDOUT, STDERR, LOGGING, SYSTEM = "stdout", "stderr", "logging", "taskmanager"

#: Longest line kept whole, in characters; the rest of a longer one is cut.
MAX_LINE_CHARS = 1024 * 1024

# An OSC escape sequence with a private number: harmless if it ever reaches
# a terminal, and unlike colours it survives a non-tty stdout.
_MARK = "\x1b]7001;%s\x07"
_MARK_RE = re.compile("\x1b\\]7001;([A-Z_]*)\x07")
# CSI sequences (colours, cursor moves) and other OSC sequences.
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


def clean_text(text: str) -> str:
    """Return ``text`` fit for every database: NUL becomes U+FFFD, ANSI codes go."""
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + " [… line cut at %d characters]" % MAX_LINE_CHARS
    return text


def split_level(text: str, default: int) -> tuple[int, str]:
    """Return (level, text without markers) for a line that may hold style markers."""
    if "\x1b]7001;" not in text:
        return default, text
    level = default
    found = [_STYLE_LEVELS.get(role) for role in _MARK_RE.findall(text) if role]
    if found:
        level = max(found)
    return level, _MARK_RE.sub("", text)


def decode(data: bytes) -> str:
    """Decode bytes as UTF-8, turning invalid sequences into U+FFFD."""
    return data.decode("utf-8", errors="replace")


class LineBuffer:
    """Split a byte stream into lines, with terminal-like carriage returns.

    A ``\\r`` not followed by ``\\n`` drops what came before it on the line (as
    a terminal overwrites it), so progress bars keep memory flat and show as
    their last state. A line longer than MAX_LINE_CHARS bytes is emitted in
    pieces.
    """

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        lines = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            lines.append(self._line(bytes(self._buf[:nl])))
            del self._buf[: nl + 1]
        cr = self._buf.rfind(b"\r")
        if cr >= 0:
            del self._buf[: cr + 1]
        while len(self._buf) > MAX_LINE_CHARS:
            lines.append(decode(bytes(self._buf[:MAX_LINE_CHARS])))
            del self._buf[:MAX_LINE_CHARS]
        return lines

    def close(self) -> list[str]:
        rest, self._buf = bytes(self._buf), bytearray()
        return [self._line(rest)] if rest else []

    @staticmethod
    def _line(raw: bytes) -> str:
        raw = raw.rstrip(b"\r")
        if b"\r" in raw:
            raw = raw[raw.rfind(b"\r") + 1 :]
        return decode(raw)


class RecordWriter:
    """Write level-tagged records to the record pipe (child side, thread-safe)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()

    def write(self, level: int, stream: str, text: str) -> None:
        data = (json.dumps([time.time(), level, stream, text]) + "\n").encode("utf-8", "replace")
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]


class CommandOutput(io.TextIOBase):
    """A text stream for a command's ``self.stdout`` / ``self.stderr``."""

    def __init__(self, writer: RecordWriter, stream: str, default_level: int):
        self.writer = writer
        self.stream = stream
        self.default_level = default_level
        self._pending = ""

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        text = self._pending + str(text)
        *lines, self._pending = text.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self):
        pass

    def close_line(self):
        if self._pending:
            pending, self._pending = self._pending, ""
            self._emit(pending)

    def _emit(self, line):
        level, line = split_level(line, self.default_level)
        if "\r" in line:
            line = line.rstrip("\r").rsplit("\r", 1)[-1]
        self.writer.write(level, self.stream, line)


def install_logging_capture(writer: RecordWriter) -> None:
    """Send every logging record to ``writer`` once; silence console handlers.

    ``Logger.handle`` runs once per record, on the logger it was logged to,
    whatever ``propagate`` says, so wrapping it sees each record exactly once.
    Handlers writing to the console (fd 1/2) are muted: their text would
    come back through the captured descriptors as a second copy. Other
    handlers (files, mail) of the project's LOGGING still run. Only for the
    forked child, which exits after the command.
    """
    formatter = logging.Formatter()
    original_handle = logging.Logger.handle

    def handle(self, record):
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + formatter.formatException(record.exc_info)
            elif record.exc_text:
                text += "\n" + record.exc_text
            if record.stack_info:
                text += "\n" + formatter.formatStack(record.stack_info)
            _, text = split_level(text, record.levelno)
            writer.write(record.levelno, LOGGING, text)
        except Exception:  # noqa: BLE001 - logging must never break the command
            pass
        return original_handle(self, record)

    logging.Logger.handle = handle

    original_emit = logging.StreamHandler.emit

    def emit(self, record):
        if not isinstance(self, logging.FileHandler) and _writes_to_console(self):
            return None
        return original_emit(self, record)

    logging.StreamHandler.emit = emit


def _writes_to_console(handler) -> bool:
    try:
        return handler.stream.fileno() in (1, 2)
    except (AttributeError, OSError, ValueError):
        return False

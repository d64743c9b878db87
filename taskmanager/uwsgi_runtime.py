"""What uWSGI says about this process: its module, its options, whether this is a spooler.

The one place that imports ``uwsgi`` for the run path and decodes its
options (the system checks of :mod:`taskmanager.checks` use :func:`option`
too). Outside uWSGI the ``uwsgi`` module cannot be imported: :data:`uwsgi`
is then None and every function here answers as for "no spooler".
Imports nothing from the app and no ORM.
"""

import os
from collections.abc import Mapping

try:  # Only importable inside a uWSGI process.
    import uwsgi
except ImportError:  # pragma: no cover - depends on the process
    uwsgi = None


def option(name: str, opt: Mapping | None = None):
    """Return a uWSGI option's value as str (flags as True; last value if repeated) or None.

    ``opt`` is a mapping shaped like ``uwsgi.opt`` (str keys; bytes values,
    True for flags, a list for a repeated option); by default this
    process's options, and None for every name outside uWSGI.
    """
    if opt is None:
        if uwsgi is None:
            return None
        opt = uwsgi.opt
    value = opt.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value


def spooler_configured() -> bool:
    """Return whether this uWSGI instance runs spooler processes (``--spooler``)."""
    return uwsgi is not None and bool(option("spooler"))


def spool_target_configured() -> bool:
    """Return whether ``uwsgi.spool()`` has a directory to write to.

    That is a local spooler, or ``--spooler-external DIR``: a web-only node
    writing into the spool directory of spooler processes run by another
    uWSGI instance (see docs/lifecycle.rst, "Web and spooler on separate nodes").
    """
    return spooler_configured() or (uwsgi is not None and bool(option("spooler-external")))


def spool_dir() -> str:
    """Return the absolute spool directory this instance spools to (its spooler's, else the external one)."""
    return os.path.abspath(option("spooler") or option("spooler-external") or "")


def in_spooler() -> bool:
    """Return whether this process is a uWSGI spooler process."""
    try:
        return uwsgi is not None and bool(uwsgi.i_am_the_spooler())
    except Exception:  # noqa: BLE001 - an unusual uWSGI build: behave as outside a spooler
        return False

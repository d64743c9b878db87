"""Everything that runs inside a run's forked child, which never returns.

Reset the signals uWSGI changed, redirect fds 0-2 to the capture pipes, drop
the supervisor's database connections unused (:func:`abandon_connections`),
install the log capture, import the command (:mod:`.target`: a command or a
``@task`` function), wait for the supervisor's release (:func:`await_release`),
run it and leave through ``os._exit``. Nothing here touches the database.

The setup that needs no descriptor of the run (:mod:`.childsetup`) is done
by a fork server's spare child while it waits for a run (:mod:`.spare`):
after the hand-over only the run's pipes are put in place. Any other child
does it all at once, in the same order.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from django.db import connections

from .. import callargs, logcapture, processes
from . import parsers, target
from .childsetup import RESET_SIGNALS, Prepared, point_at, prepare_process, working_dir
from .failure import failure_text
from .prefork import leave, print_exception
from .target import CommandName, load_command

# Exit code of a child whose command raised (as sysexits' EX_SOFTWARE).
_EXIT_EXCEPTION = 70


def child_main(
    command: CommandName,
    argv: list[str],
    out_w: int,
    err_w: int,
    rec_w: int,
    marker: str = "",
    parent: int = 0,
    go: int | None = None,
    reuse: bool = False,
    cwd: str = "",
    prepared: Prepared | None = None,
) -> None:
    """Run the command in the forked child and leave with ``os._exit``; never return.

    With ``go`` (a socket fd), wait after the preparations until the
    supervisor sends the run marker (and the arguments) on it
    (:meth:`Child.release`); leave without running anything if it closes it
    instead (:meth:`Child.cancel`). With ``reuse`` too, after each run say
    that it ended (:func:`end_run`) and wait for the next release, until the
    supervisor closes ``go`` (:mod:`.reuse`). ``cwd``: :func:`working_dir`, as
    the fork server found it once (else read here). ``prepared``: what
    :func:`prepare_process` did in this process already (a spare child).
    """
    code = _EXIT_EXCEPTION
    try:
        abandon_connections()
        os.setpgid(0, 0)
        processes.set_pdeathsig(signal.SIGKILL)
        if parent and os.getppid() != parent:
            os._exit(code)  # the supervisor died before PDEATHSIG was armed
        if prepared is None:
            prepared = prepare_process(out_w, err_w)
        else:  # a spare's: its stream objects write to fd 1 and fd 2, now the run's pipes
            point_at(out_w, err_w)
        # At the run, not ahead in a spare: the directory as it is now (one replaced
        # since, renamed away and made again, is the new one), as end_run does.
        os.chdir(cwd or working_dir())
        writer = prepared.writer
        writer.fd = rec_w
        if prepared.level_warning:
            writer.write(logcapture.WARNING, logcapture.SYSTEM, prepared.level_warning)
        reused = reuse and go is not None
        if reused:  # what end_run puts back and checks; a fresh child's run is its last
            _STREAMS[:] = [sys.stdout, sys.stderr, sys.stdin]
            _PIPES[:], _UMASK[:] = processes.fd_identities(), [os.umask(0o022)]
            os.umask(_UMASK[0])
        # Imported while the supervisor commits the claim (the admin imports
        # command modules in-process too, to check arguments); a failure is
        # reported once the run is released.
        loaded = load_command(command)
        environ = dict(os.environ) if reused else None  # restored before each run of a reused child
        while True:
            if go is not None:
                release = await_release(go, close=not reuse)
                if release is None:
                    code = 0
                    return  # the claim was lost, or a reused child retired: leave (finally)
                marker, argv = release[0], release[1] if release[1] is not None else argv
            if marker:
                os.environ[processes.RUN_ENV] = marker
            code = run_command(command, argv, writer, loaded, reuse=reused)
            if not reused or processes.fd_identities() != _PIPES:
                # Not reused, or the run pointed fd 0-2 elsewhere (closed or
                # redirected them): the next run's output would not reach its log.
                return
            end_run(writer, code, environ)
            loaded = load_command(command)  # a new instance (the module stays imported)
    except BaseException:  # noqa: BLE001 - the child must always leave through os._exit
        print_exception()
    finally:
        leave(code)


def await_release(go: int, close: bool = True) -> tuple[str, list[str] | None] | None:
    """Block until the supervisor sends a release on ``go``: return (marker, argv), or None if it closed it.

    ``argv`` is None when the release gives no arguments (those of the spawn
    apply). ``close``: close ``go`` once the release came (no run follows).
    """
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(go, 4096)
        if not chunk:
            return None
        data += chunk
    if close:
        os.close(go)
    message = json.loads(data)
    return message["marker"], message.get("argv")


def end_run(writer: logcapture.RecordWriter, code: int, environ: dict) -> None:
    """In a reused child, after a run: send its end, and make the process ready for the next run.

    What is written to fd 1 and fd 2 is flushed before the end goes out on
    the record pipe: the supervisor, once it has read the end, finds every
    byte of the run in the pipes. Then what a run may have changed in the
    process and the next run must not inherit: the environment (its marker
    with it), the signal dispositions, the working directory, the umask, the
    standard streams, the command's database connections (closed as at the
    end of a request, by ``CONN_MAX_AGE``).
    """
    # Deferred: only a reused child needs it.
    from django.db import close_old_connections

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    writer.write(0, logcapture.RUN_END_STREAM, str(code))
    close_old_connections()
    os.environ.clear()
    os.environ.update(environ)
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.chdir(working_dir())
    os.umask(_UMASK[0])
    sys.stdout, sys.stderr, sys.stdin = _STREAMS


# As child_main set them up: the standard streams, fds 0-2 (device, inode) and
# the umask (end_run restores the streams and the umask; fds 0-2 are checked).
_STREAMS: list = []
_PIPES: list = []
_UMASK: list = []


# Database connections a forked child inherited (see abandon_connections).
_abandoned: list = []


def abandon_connections() -> None:
    """In a forked child, drop the database connections inherited from the supervisor, unused.

    The supervisor keeps its connections while the child runs. The child
    must never send anything on them, not even the goodbye of a close (which
    would end the supervisor's PostgreSQL or MySQL session): the driver's
    objects are kept referenced here, so no finalizer ever runs before the
    child leaves through ``os._exit``, and Django's wrappers forget them, so
    the command opens connections of its own. On SQLite the child's own
    connection shares the process's lock bookkeeping with the inherited
    one, which the supervisor backs by keeping its connection open until
    the child has exited (:meth:`ReportLog.db_failed` closes only
    connections that are unusable, which a SQLite one never is).
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _abandoned.append(conn.connection)
            conn.connection = None
        # PostgreSQL with OPTIONS["pool"]: the pool (a class attribute) holds
        # the supervisor's idle connections; the child makes a pool of its own.
        pools = getattr(type(conn), "_connection_pools", None)
        if pools and conn.alias in pools:
            _abandoned.append(pools.pop(conn.alias))


def run_command(
    name: CommandName, argv: list[str], writer: logcapture.RecordWriter, loaded=None, reuse: bool = False
) -> int:
    """Run the command ``name`` (``loaded`` by load_command, else loaded here); return the exit code.

    As ``call_command`` would, with the parser built ahead if there is one
    (:mod:`.parsers`; ``reuse``: a reused child, which builds it at its first run).
    """
    if name.kind == callargs.FUNCTION:  # a @task function: called, not run as a command (target.py)
        return target.run_function(
            load_command(name) if loaded is None else loaded, argv, writer, _EXIT_EXCEPTION
        )
    out = logcapture.CommandOutput(writer, logcapture.STDOUT, logcapture.INFO)
    err = logcapture.CommandOutput(writer, logcapture.STDERR, logcapture.ERROR)
    command = None
    try:
        command = load_command(name) if loaded is None else loaded
        if isinstance(command, BaseException):
            raise command
        command.style = logcapture.level_style()
        # --no-color / --force-color would make execute() replace the style
        # that marks levels (styled errors would count as INFO); the log is
        # never coloured anyway.
        parsers.call(name, command, argv, out, err, reuse=reuse)
        return 0
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        err.write(str(exc.code) + "\n")
        return 1
    except BaseException as exc:  # noqa: BLE001 - reported, then the child exits
        # On the command's stderr, at ERROR: a line of the command, counted
        # as an error (as manage.py would print it); unless the log has it
        # already (a django.tasks call's, logged by Django: djangotasks/failure.py).
        if not getattr(exc, "taskmanager_logged", False):
            writer.write(logcapture.ERROR, logcapture.STDERR, failure_text(exc, command, argv))
        writer.write(0, logcapture.OUTCOME_STREAM, "exception: %s" % type(exc).__name__)
        return _EXIT_EXCEPTION
    finally:
        out.close_line()
        err.close_line()

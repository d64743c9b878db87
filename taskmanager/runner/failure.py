"""What a run's log shows of the exception that ended its command (in the child).

One job: turn the exception into the text ``manage.py`` would have printed,
so that the report reads like the terminal would have: one line for a
``CommandError`` (unless ``--traceback``), else the traceback from the
command's ``handle()`` down.
"""

import traceback


def failure_text(exc: BaseException, command, argv: list[str]) -> str:
    """Return what the log shows of the exception that ended the command.

    A ``CommandError`` is the one line ``manage.py`` prints ("CommandError:
    message"), unless the arguments ask for ``--traceback``; otherwise the
    traceback, starting at the command's ``handle()`` (the frames above it,
    this runner's, ``call_command``'s and ``execute``'s, say nothing about the
    command), with every frame below it. An exception raised before
    ``handle()`` (arguments, system checks, import) keeps the frames from
    ``call_command`` on.
    """
    # Deferred: Django's management package is only needed in the child.
    from django.core.management.base import CommandError

    if isinstance(exc, CommandError) and not wants_traceback(command, argv):
        return "%s: %s" % (type(exc).__name__, exc)
    tb = exc.__traceback__
    tb = tb.tb_next or tb  # past run_command, where it was caught
    entry = tb
    while entry is not None:
        frame = entry.tb_frame
        if frame.f_code.co_name == "handle" and command is not None and frame.f_locals.get("self") is command:
            tb = entry
            break
        entry = entry.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def wants_traceback(command, argv: list[str]) -> bool:
    """Whether the run's arguments hold ``--traceback`` (as the command's parser reads them)."""
    if command is None or isinstance(command, BaseException):
        return False
    try:
        parser = command.create_parser("manage.py", command.__module__.rpartition(".")[2])
        options, _rest = parser.parse_known_args(argv)
    except BaseException:  # noqa: BLE001 - arguments that do not parse: no traceback asked for
        return False
    return bool(getattr(options, "traceback", False))

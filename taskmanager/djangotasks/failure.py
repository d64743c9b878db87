"""A failed call's exception in its run's log once, not twice.

Django's ``django.tasks`` (and the backport) connect a receiver to
``task_finished`` that logs a FAILED result at ERROR with the exception's
traceback (on the logger ``django.tasks``, or ``django_tasks``: for error
monitoring tools). The child sends ``task_finished`` while handling the
function's exception, so that record is in the run's log; the run path
would then print the same exception again as the command's failure, and
the report would count two errors for one. :func:`send_finished_failed`
watches the logger while the signal is sent; when a record with the
exception went out, it marks the exception (:data:`LOGGED`), and the child
(``runner/child_main.py``) then records the run's end without printing it
again. When nobody logged it (the receiver disconnected, the logger off),
the child prints it as for any command.
"""

import logging

#: The attribute set on an exception already in the run's log.
LOGGED = "taskmanager_logged"
#: Where Django's receiver logs (core, then the backport).
LOGGERS = ("django.tasks", "django_tasks")


class _Seen(logging.Handler):
    """Notes whether a record carrying ``exc`` was emitted."""

    def __init__(self, exc: BaseException):
        super().__init__(logging.ERROR)
        self.exc = exc
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = self.seen or bool(record.exc_info and record.exc_info[1] is self.exc)


def send_finished_failed(signal, sender, result, exc: BaseException) -> None:
    """Send ``task_finished`` for a FAILED result while handling ``exc``; mark ``exc`` if it was logged."""
    seen = _Seen(exc)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(seen)
    try:
        signal.send(sender, task_result=result)
    finally:
        for logger in loggers:
            logger.removeHandler(seen)
    if seen.seen:
        try:
            setattr(exc, LOGGED, True)
        except (AttributeError, TypeError):  # an exception type that takes no attributes: printed again
            pass

"""The exceptions a django.tasks result records when its function did not end by itself.

A function that raised is recorded with its own exception. When the run
ended otherwise, its ``TaskResult`` is FAILED with one error whose
``exception_class_path`` names one of these (issue 18): a user stopped it
(:class:`Stopped`), it ran out of time (:class:`TimedOut`), its supervisor
or its node went away (:class:`Interrupted`), or its process died or was
refused before the function returned (:class:`Crashed`). They are never
raised inside the function: the process running it is killed instead.
Pure: nothing of the ORM, nothing of the package.
"""


class RunEnded(Exception):
    """The base: the run of a django.tasks function ended without its function returning or raising."""


class Stopped(RunEnded):
    """A user stopped the run (Stop in the admin)."""


class TimedOut(RunEnded):
    """The run went past its time-out and was killed."""


class Interrupted(RunEnded):
    """The run's supervisor or node went away; recovery closed the run."""


class Crashed(RunEnded):
    """The process running the function died, or the run was refused, before the function returned."""


def class_path(exc_type: type) -> str:
    """The dotted path Django records for an exception class (``module.QualName``)."""
    return "%s.%s" % (exc_type.__module__, exc_type.__qualname__)


#: What the end kind of a run (``models.EndKind`` values) records when the
#: function did not end by itself; any other kind records :class:`Crashed`.
BY_END_KIND = {
    "stopped": Stopped,
    "timed out": TimedOut,
    "interrupted": Interrupted,
    "fenced": Interrupted,
}


def for_end_kind(kind: str) -> type:
    """The exception class recorded for a run that ended with ``kind`` before its function returned."""
    return BY_END_KIND.get(kind, Crashed)

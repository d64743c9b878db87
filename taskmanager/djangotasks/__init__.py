"""django.tasks on the uWSGI spooler (issue 18): a backend whose runs are command runs.

Django 6.0 added ``django.tasks`` (``@task``, ``.enqueue()``, ``TaskResult``);
this package is a backend for it, on the spoolers the app already runs,
with the results in the same admin. The design (``docs/tasks_backend.rst``):

**The row is the queue of record.** Each ``.enqueue()`` stores one
:class:`taskmanager.models.DjangoTaskResult` row (READY; function path,
queue, priority, ``run_after``, arguments as JSON) in the caller's
transaction; after its commit a spool hint is written (a spool entry of task
0 whose token is the row's id, trigger ``enqueue``). The hint only wakes a
spooler: a process with no spooler (a shell, a web-only node) stores the row
and nothing else, and the periodic pass of a spooler node serving its queue
hints it there (``recovery/results.py``: the due rows no waiting hint covers,
within ``TASKMANAGER_RECOVERY_SECONDS``).

**Claim.** A spooler woken by a hint claims the best due row of the queues
its node serves (``TASKMANAGER_SERVE_QUEUES``; Django's queue names are the
app's queue names): highest ``priority`` first, then the oldest, among rows
whose ``run_after`` has passed on the database's clock; one conditional
UPDATE READY -> RUNNING, checked by its row count, and the run's Report
inserted in the same transaction. A row runs at most once.

**Run.** The run path of a command run, unchanged: the child (from the
spooler's fork server, or a reused child) runs the internal command
``_run_task_result <id>``, which calls the function and stores its return
value or exception (:mod:`.work`); the supervisor captures its log with
levels, beats, polls Stop, enforces the time-out (the backend's
``OPTIONS["TIMEOUT"]``, else ``TASKMANAGER_DEFAULT_TIMEOUT``), fences, and
records the report's end. The report belongs to the function's *carrier
task* (a Task per function path, of the internal command): the log viewer,
Stop, retention, run history and the rights over the internal command
(``Command.run_by``, set by a superuser) apply to function runs as to
command runs.

**End.** SUCCESSFUL with the return value, or FAILED with the function's
exception; a run that ended otherwise (stopped, timed out, killed,
interrupted) is FAILED with one error whose class path is
:mod:`taskmanager.exceptions`' (``Stopped``, ``TimedOut``, ``Interrupted``,
``Crashed``), written by the supervisor after the run, or by recovery when
the supervisor died. A row is never left RUNNING.

Modules: :mod:`.backend` (the ``BaseTaskBackend``; Django 6.0+ only),
:mod:`.run` (the spooler's side), :mod:`.work` (the child's side). Nothing
outside this package imports ``django.tasks``, and the model and its
migration are plain Django: the app runs unchanged on Django 5.2.
"""

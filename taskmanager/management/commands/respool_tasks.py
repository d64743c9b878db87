"""Give a new spool entry to this node's pending tasks whose entry is gone.

What a uWSGI spooler does when it starts (``recovery.respool_missing``), on
demand: after the spool directory was emptied while uWSGI kept running, or to
take over the tasks of a node that no longer exists (``--adopt``).
"""

import os
import socket

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ... import db, dbclock, spoolfiles
from ...models import SpoolerHeartbeat, Task
from ...recovery import respool


def local_nodes() -> list[str]:
    """Node strings (``host:/spool/dir``) of this host known to the database."""
    host = socket.gethostname()
    names = set(SpoolerHeartbeat.objects.values_list("node", flat=True))
    names.update(Task.objects.exclude(spooler_node="").values_list("spooler_node", flat=True).distinct())
    result = []
    for name in sorted(names):
        node_host, directory = spoolfiles.split_node(name)
        if node_host == host and os.path.isabs(directory):
            result.append(name)
    return result


class Command(BaseCommand):
    help = (
        "Respool the SCHEDULED/SPOOLED tasks of this node whose uWSGI spool file is missing "
        "(what a spooler does when it starts). Run it as the user uWSGI runs as."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--spool-dir",
            help="The node's uWSGI spool directory (its 'spooler' option). Default: the only "
            "spool directory of this host known to the database.",
        )
        parser.add_argument(
            "--adopt",
            action="append",
            default=[],
            metavar="NODE",
            help="Also take over the tasks recorded on NODE ('host:/spool/dir', as shown in the "
            "admin), e.g. a node that was replaced. Repeatable.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be respooled; change nothing."
        )

    @db.pin  # it decides what runs: never from a lagging replica (taskmanager.db)
    def handle(self, *args, **options):
        spool_dir = options["spool_dir"] or self._default_dir()
        if not os.path.isdir(spool_dir):
            raise CommandError("The spool directory %s does not exist." % spool_dir)
        if not os.access(spool_dir, os.W_OK | os.X_OK):
            raise CommandError("The spool directory %s is not writable by this user." % spool_dir)
        node = next(
            (name for name in local_nodes() if spoolfiles.node_matches(name, spool_dir)),
            spoolfiles.node_id(spool_dir),
        )

        def write(task_id, token, trigger, at):
            # uWSGI compares "at" with this machine's clock; it is on the database's.
            at = dbclock.to_local(at) if at is not None else None
            return spoolfiles.write(spool_dir, spoolfiles.make_entry(task_id, token, trigger, at), at)

        done = respool(spool_dir, write, node=node, adopt=options["adopt"], dry_run=options["dry_run"])
        now = dbclock.now()
        verb = "Would respool" if options["dry_run"] else "Respooled"
        if options["verbosity"] >= 2:
            for item in done:
                when = (
                    "at once"
                    if item.at is None or item.at <= now
                    else timezone.localtime(item.at).isoformat()
                )
                self.stdout.write(
                    "%s task %s (%s, %s): runs %s" % (verb, item.task_id, item.name, item.status, when)
                )
        if options["verbosity"] >= 1:
            self.stdout.write("%s %d task(s) on %s." % (verb, len(done), node))
        return None

    def _default_dir(self) -> str:
        nodes = local_nodes()
        if len(nodes) == 1:
            return spoolfiles.split_node(nodes[0])[1]
        if not nodes:
            raise CommandError(
                "No spooler node of this host (%s) is known to the database: give --spool-dir."
                % socket.gethostname()
            )
        raise CommandError(
            "Several spool directories on this host; choose one with --spool-dir: %s" % ", ".join(nodes)
        )

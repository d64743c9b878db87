"""Alias of ``collect_commands``, the name the original user guide uses."""

from .collect_commands import Command as CollectCommands


class Command(CollectCommands):
    pass

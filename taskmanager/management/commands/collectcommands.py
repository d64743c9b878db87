"""Alias of ``collect_commands``, the name the original user guide uses.

``collect_commands`` does not record it as a command of its own (see
``collect_commands.ALIASES``).
"""

from .collect_commands import Command as CollectCommands


class Command(CollectCommands):
    help = "Another name of collect_commands. " + CollectCommands.help

"""System checks, ids ``taskmanager.E0xx`` (errors) and ``taskmanager.W0xx`` (warnings)."""

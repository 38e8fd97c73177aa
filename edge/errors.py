"""Named exceptions of the edge, each rooted in a builtin category."""


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid; the message names every bad key."""


class ScenarioError(ValueError):
    """A scenario file line could not be understood."""


class StoreError(OSError):
    """The station's local database could not be written (disk full, locked, corrupt)."""

"""User-facing errors: the `lab` CLI prints them as one line and exits 2."""


class LabError(Exception):
    """A problem with the user's input or environment, reported as one clear line (no traceback)."""


class ConfigError(LabError):
    """A bad configuration file, key or value."""

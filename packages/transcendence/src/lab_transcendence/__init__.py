"""lab_transcendence."""

__version__ = "0.1.0"

"""lab_learnsched."""

__version__ = "0.1.0"

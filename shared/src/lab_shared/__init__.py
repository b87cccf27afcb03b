"""lab_shared: the core every lab package builds on (config, run dirs, logging, trainer, reports, CLI)."""

__version__ = "0.1.0"

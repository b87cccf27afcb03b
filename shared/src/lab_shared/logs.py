"""Logging: `get_logger(name)`, the stderr logger every command uses for its status lines."""

from __future__ import annotations

import logging
import os
import sys


def get_logger(name: str = "lab") -> logging.Logger:
    """A stderr logger; under DDP only rank 0 logs above WARNING."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        rank = int(os.environ.get("RANK", "0"))
        logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
        logger.propagate = False
    return logger

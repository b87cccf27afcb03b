"""Locating the external programs the packages drive: Stockfish and PostgreSQL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab_shared.errors import LabError

STOCKFISH_ADVICE = "install it with `apt-get install -y stockfish` (Debian/Ubuntu) or pass --stockfish PATH / set LAB_STOCKFISH"
PG_ADVICE = "install PostgreSQL (e.g. `apt-get install -y postgresql`) or set LAB_PG_BIN to its bin folder"


def find_stockfish(explicit: str | Path | None = None) -> Path:
    """The Stockfish binary: explicit path, $LAB_STOCKFISH, PATH, then Debian's /usr/games/stockfish."""
    for cand in (explicit, os.environ.get("LAB_STOCKFISH")):
        if cand:
            p = Path(cand)
            if p.is_file() and os.access(p, os.X_OK):
                return p
            raise LabError(f"Stockfish not found at {p}: {STOCKFISH_ADVICE}")
    found = shutil.which("stockfish")
    if found:
        return Path(found)
    debian = Path("/usr/games/stockfish")
    if debian.is_file():
        return debian
    raise LabError(f"Stockfish binary not found: {STOCKFISH_ADVICE}")


def find_pg_bin(explicit: str | Path | None = None) -> Path:
    """PostgreSQL's bin folder (holding initdb and pg_ctl): explicit, $LAB_PG_BIN, PATH, /usr/lib/postgresql/*/bin."""
    cand = explicit or os.environ.get("LAB_PG_BIN")
    if cand:
        p = Path(cand)
        if (p / "initdb").is_file():
            return p
        raise LabError(f"no initdb in {p}: {PG_ADVICE}")
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise LabError(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {PG_ADVICE}")

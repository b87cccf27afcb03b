"""`lab doctor`: what this machine has for lab, with advice for what is missing."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import entry_points, version

from lab_shared.errors import LabError
from lab_shared.tools import find_pg_bin, find_stockfish


def _line(ok: bool, name: str, detail: str) -> None:
    print(f"[{'ok' if ok else '--'}] {name:<12} {detail}")


def run_doctor() -> int:
    """Print one line per component; return 0 when the essentials (torch) are present."""
    _line(sys.version_info >= (3, 11), "python", f"{platform.python_version()} ({sys.executable})")
    essential_ok = True
    try:
        import torch

        cuda = torch.cuda.is_available()
        detail = f"{torch.__version__}; CUDA {'available: ' + torch.cuda.get_device_name(0) if cuda else 'not available'}"
        if cuda:
            detail += f" (CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s), bf16 {torch.cuda.is_bf16_supported()})"
        _line(True, "torch", detail)
    except ImportError:
        essential_ok = False
        _line(False, "torch", "not installed: pip install torch==2.13.0 (or `make setup`)")
    try:
        sf = find_stockfish()
        out = subprocess.run(
            [str(sf)], input="uci\nquit\n", capture_output=True, text=True, errors="replace", timeout=10
        ).stdout
        name = next((ln[8:] for ln in out.splitlines() if ln.startswith("id name")), "unknown version")
        _line(True, "stockfish", f"{sf} ({name})")
    except (LabError, OSError, subprocess.TimeoutExpired) as e:
        _line(False, "stockfish", f"{e} — needed by `lab chess`")
    try:
        pg = find_pg_bin()
        ver = subprocess.run(
            [str(pg / "postgres"), "--version"], capture_output=True, text=True, errors="replace", timeout=10
        )
        _line(True, "postgresql", f"{pg} ({ver.stdout.strip()})")
    except (LabError, OSError, subprocess.TimeoutExpired) as e:
        _line(False, "postgresql", f"{e} — needed by `lab sched pg`")
    for ep in sorted(entry_points(group="lab.commands"), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "?"
        try:
            v = version(dist)
        except Exception:
            v = "?"
        _line(True, f"lab {ep.name}", f"{dist} {v}")
    return 0 if essential_ok else 1

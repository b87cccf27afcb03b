"""provenance.json: what made a run folder, so a resume can refuse to mix settings and a result can be traced.

The record holds the resolved config, sha256 of the input files, the git commit (and whether the tree was
dirty) of the code, package versions, torch/CUDA, host, argv, start/end times and every resume (time, argv,
forced, the keys that changed). Paths in configs and inputs are stored absolute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib.metadata import distributions, version
from pathlib import Path
from typing import Any

from lab_shared.config import config_to_dict

FILE = "provenance.json"
_META_FILES = ("meta.json", "manifest.json")  # a folder input is identified by these when it has them


def absolute(path: str | Path) -> Path:
    """An absolute, normalised path (symlinks kept: they may be how the user names the data)."""
    return Path(os.path.abspath(path))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _absolute_paths(obj: Any) -> Any:
    """Path values (anywhere in a dataclass) made absolute, so a resume from another folder compares alike."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(
            obj, **{f.name: _absolute_paths(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        )
    if isinstance(obj, Path):
        return absolute(obj)
    return obj


def resolved_config(config: Any) -> Any:
    """A config as stored: dataclasses as plain JSON with absolute paths; dicts go through JSON as they are."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config):
        return config_to_dict(_absolute_paths(config))
    return json.loads(json.dumps(config, default=str))


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_input(path: str | Path) -> str:
    """sha256 of a file; for a folder, of its meta.json/manifest.json if it has one (cheap and stable while
    caches are added beside the data), else of the names and sizes of its files."""
    p = Path(path)
    if p.is_file():
        return hash_file(p)
    if p.is_dir():
        metas = [p / m for m in _META_FILES if (p / m).is_file()]
        h = hashlib.sha256()
        if metas:
            for m in metas:
                h.update(m.name.encode() + b"\0" + hash_file(m).encode())
            return "meta:" + h.hexdigest()
        for q in sorted(p.rglob("*")):
            if q.is_file() and not any(part.startswith(".") for part in q.relative_to(p).parts):
                h.update(f"{q.relative_to(p)}\0{q.stat().st_size}\n".encode())
        return "listing:" + h.hexdigest()
    return "missing"


def hash_inputs(paths: Iterable[str | Path | None]) -> dict[str, str]:
    """{absolute path: hash} for the given inputs (None entries skipped)."""
    return {str(absolute(p)): hash_input(p) for p in paths if p is not None}


def git_state(where: str | Path | None = None) -> dict | None:
    """{"commit", "dirty"} of the git checkout holding `where` (default: this code); None without git/repo."""
    git = shutil.which("git")
    if git is None:
        return None
    cwd = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            [git, "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"commit": commit.stdout.strip(), "dirty": dirty}


def package_versions() -> dict[str, str]:
    """Versions of the lab-* distributions, torch, numpy and python (read from metadata; nothing imported)."""
    out = {"python": platform.python_version()}
    for d in distributions():
        name = (d.metadata["Name"] or "").lower()
        if name.startswith("lab-") or name == "lab":
            out[name] = d.version
    for name in ("torch", "numpy", "safetensors", "transformers"):
        try:
            out[name] = version(name)
        except Exception:
            pass
    return dict(sorted(out.items()))


def torch_info() -> dict:
    """torch version and CUDA (only asked of torch when it is already imported: the CLI stays light)."""
    info: dict[str, Any] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["version"] = torch.__version__
        info["cuda"] = torch.version.cuda
        try:
            info["cuda_available"] = bool(torch.cuda.is_available())
            if info["cuda_available"]:
                info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:
            info["cuda_available"] = False
    return info


_SECRETS = (
    re.compile(r"((?:password|passwd|token|secret)\s*[=:]\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.I),
    re.compile(r"(://[^:/@]*:)[^@]*@"),  # scheme://user:PASSWORD@host
)


def redact(text: str) -> str:
    """`text` with anything that looks like a password (DSN `password=`, URI `user:pw@`) replaced by ***."""
    text = _SECRETS[0].sub(r"\1***", text)
    return _SECRETS[1].sub(r"\1***@", text)


def argv() -> list[str]:
    """The command line as recorded: secrets redacted, since provenance.json is an ordinary file."""
    return [redact(a) for a in sys.argv]


def new_record(config: Any, inputs: Iterable[str | Path | None] = ()) -> dict:
    return {
        "config": resolved_config(config),
        "inputs": hash_inputs(inputs),
        "git": git_state(),
        "packages": package_versions(),
        "torch": torch_info(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "cwd": str(Path.cwd()),
        "argv": argv(),
        "started": now(),
        "ended": None,
        "resumes": [],
    }


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1] if prefix else "": d}


def config_diff(old: Any, new: Any, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (keys under `ignore` prefixes skipped)."""
    a, b = _flat(old), _flat(new)
    skip = tuple(ignore)
    keys = sorted(set(a) | set(b))
    return [
        k
        for k in keys
        if a.get(k, "<absent>") != b.get(k, "<absent>")
        and not any(k == s or k.startswith(s + ".") for s in skip)
    ]


def _short(v: Any, width: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= width else r[: width - 3] + "..."


def describe_diff(old: Any, new: Any, keys: list[str], limit: int = 6) -> str:
    """`key (old -> new)` for the first `limit` keys, for a one-line error."""
    a, b = _flat(old), _flat(new)
    parts = [f"{k} ({_short(a.get(k, '<absent>'))} -> {_short(b.get(k, '<absent>'))})" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return ", ".join(parts)


def inputs_diff(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Input paths that were added, dropped or whose hash changed."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))

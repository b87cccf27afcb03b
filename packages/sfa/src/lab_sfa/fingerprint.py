"""Content hashes for caches: a cached model is reused only when its data and settings are the same.

Caches keyed by a path or a sequence name silently go stale when a task file is edited; these keys hash the
bytes of the training data and of the starting weights instead.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def _update(h, obj: Any) -> None:
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _update(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"[{len(obj)}".encode())
        for v in obj:
            _update(h, v)
    else:
        h.update(repr(obj).encode())


def dataset_fingerprint(ds: Any) -> str:
    """sha256 of a dataset's contents: its tensors when it keeps them (x/y, blocks), else every item."""
    h = hashlib.sha256()
    fields = [getattr(ds, a) for a in ("x", "y", "blocks", "task") if hasattr(ds, a)]
    if fields and any(torch.is_tensor(f) for f in fields):
        _update(h, fields)
    else:
        for i in range(len(ds)):
            _update(h, ds[i])
    return h.hexdigest()


def tensors_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    _update(h, tensors)
    return h.hexdigest()


def settings_key(*parts: Any) -> str:
    """A short hex key over JSON-able settings and fingerprints."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]

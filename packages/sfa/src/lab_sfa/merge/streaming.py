"""Streaming merges: read one tensor per input at a time, write the result tensor by tensor.

For checkpoints stored as safetensors (a file, a folder's ``model.safetensors`` or a sharded index) the merge
never holds a whole model: each input's header is parsed once (the safetensors format: an 8-byte header
length, a JSON header of dtype / shape / byte offsets, then the raw bytes), each tensor is read with a plain
positioned read (no mmap, so pages do not pile up in the resident set), merged, and appended to the output
file, whose header is written first from the base's shapes. Peak memory is about one tensor per input plus
the output tensor, whatever the model size.

Task Arithmetic and WiSE-FT are per-tensor by nature; TIES streams with *per-tensor* trimming (the top
floor(k * n) magnitudes of each tensor, as mergekit does). TIES with the paper's global trimming needs every
magnitude of a task vector at once and goes through the in-memory path (`lab_sfa.merge.state_dicts`).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from torch import Tensor

from lab_shared.errors import LabError

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip
NAMES = {v: k for k, v in DTYPES.items()}


class LazySafetensors:
    """The tensors of a safetensors checkpoint (file, folder or sharded index), read one at a time."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            if (path / "model.safetensors").is_file():
                files = [path / "model.safetensors"]
            elif (path / "model.safetensors.index.json").is_file():
                index = path / "model.safetensors.index.json"
                try:
                    shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
                    files = [path / s for s in shards]
                except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
                    raise LabError(f"cannot read shard index {index}: {e}") from None
            else:
                raise LabError(f"{path} holds no safetensors weights")
        else:
            files = [path]
        self.path = path
        self.entries: dict[str, tuple[Path, int, dict]] = {}  # key -> (file, data start, header entry)
        self.metadata: dict = {}
        for f in files:
            self._read_header(f)

    def _read_header(self, f: Path) -> None:
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 100_000_000:
                    raise ValueError("header too large")
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error) as e:
            raise LabError(f"cannot read {f}: not a valid safetensors file ({e})") from None
        self.metadata.update(header.pop("__metadata__", {}) or {})
        for key, entry in header.items():
            if entry.get("dtype") not in DTYPES:
                raise LabError(f"{f}: tensor '{key}' has unsupported dtype {entry.get('dtype')}")
            self.entries[key] = (f, 8 + n, entry)

    def keys(self) -> list[str]:
        return list(self.entries)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.entries[key][2]["shape"])

    def dtype(self, key: str) -> torch.dtype:
        return DTYPES[self.entries[key][2]["dtype"]]

    def get(self, key: str) -> Tensor:
        """Read one tensor (a fresh CPU tensor)."""
        f, start, entry = self.entries[key]
        a, b = entry["data_offsets"]
        buf = bytearray(b - a)
        with open(f, "rb") as fh:
            fh.seek(start + a)
            if fh.readinto(buf) != b - a:
                raise LabError(f"{f}: tensor '{key}' is truncated")
        t = torch.frombuffer(buf, dtype=self.dtype(key)) if buf else torch.empty(0, dtype=self.dtype(key))
        return t.reshape(self.shape(key))


def is_streamable(paths: list[str | Path]) -> bool:
    """True when every checkpoint is stored as safetensors (file, folder or sharded index)."""
    for p in map(Path, paths):
        ok = p.suffix == ".safetensors" and p.is_file()
        ok = ok or (
            p.is_dir()
            and any((p / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json"))
        )
        if not ok:
            return False
    return True


def ties_tensor(base: Tensor, models: list[Tensor], k: float, lam: float) -> Tensor:
    """TIES on one tensor: per-tensor top floor(k*n) trim, sign election by mass, disjoint mean, scale."""
    taus = torch.stack([m.float() - base.float() for m in models])
    n = base.numel()
    keep = int(k * n)
    flat = taus.reshape(len(models), -1)
    if keep < n:
        trimmed = torch.zeros_like(flat)
        if keep > 0:
            idx = flat.abs().topk(keep, dim=1).indices
            trimmed.scatter_(1, idx, flat.gather(1, idx))
        flat = trimmed
    sign = torch.sign(flat.sum(0))
    agree = torch.sign(flat) == sign
    count = agree.sum(0).clamp(min=1)
    delta = (flat * agree).sum(0) / count
    return (base.float() + lam * delta.reshape(base.shape)).to(base.dtype)


def merge_tensor(
    method: str, base: Tensor, models: list[Tensor], lam: float, k: float, alpha: float
) -> Tensor:
    """One merged tensor (non-float tensors are copied from the base)."""
    if not base.is_floating_point():
        return base
    if method == "task_arithmetic":
        delta = sum(m.float() - base.float() for m in models)
        return (base.float() + lam * delta).to(base.dtype)
    if method == "wise_ft":
        return ((1.0 - alpha) * base.float() + alpha * models[0].float()).to(base.dtype)
    return ties_tensor(base, models, k, lam)


def stream_merge(
    method: str, base: str | Path, models: list[str | Path], out_file: Path, info: dict,
    lam: float = 1.0, k: float = 0.2, alpha: float = 0.5,
) -> None:  # fmt: skip
    """Merge tensor by tensor into ``out_file`` (a safetensors file, written to a temp name then renamed)."""
    b = LazySafetensors(base)
    ms = [LazySafetensors(m) for m in models]
    keys = b.keys()
    for m in ms:
        missing = [key for key in keys if key not in m.entries]
        extra = [key for key in m.entries if key not in b.entries]
        if missing or extra:
            what = f"missing from {m.path}" if missing else f"in {m.path} but not in {b.path}"
            raise LabError(f"tensor '{(missing or extra)[0]}' is {what}")
        for key in keys:
            if m.shape(key) != b.shape(key):
                raise LabError(
                    f"tensor '{key}' has shape {m.shape(key)} in {m.path} but {b.shape(key)} in {b.path}"
                )
    header: dict = {"__metadata__": {"format": "pt", "merge": json.dumps(info, default=str)}}
    offset = 0
    for key in keys:
        size = b.dtype(key).itemsize * int(torch.Size(b.shape(key)).numel())
        header[key] = {
            "dtype": NAMES[b.dtype(key)],
            "shape": list(b.shape(key)),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align the data to 8 bytes, as safetensors does
    tmp = out_file.parent / f".{out_file.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(struct.pack("<Q", len(blob)))
            fh.write(blob)
            for key in keys:
                t = merge_tensor(method, b.get(key), [m.get(key) for m in ms], lam, k, alpha)
                fh.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
                del t
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out_file)
    finally:
        if tmp.exists():
            tmp.unlink()

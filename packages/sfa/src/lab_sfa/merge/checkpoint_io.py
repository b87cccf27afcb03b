"""Reading and writing model checkpoints for merging: safetensors files or Hugging Face model folders.

A checkpoint is one of
- a ``.safetensors`` file;
- a folder holding ``model.safetensors``, a sharded ``model.safetensors.index.json``, or (read-only, via
  ``torch.load(weights_only=True)``, never unpickling code) ``pytorch_model.bin`` / its sharded index
  (a Hugging Face model folder, or a lab run checkpoint ``checkpoints/step-N/``).

Tied weights: Hugging Face saves a tied output embedding once (``lm_head.weight`` is dropped and re-tied on
load); other writers may keep the other name. `align` fills a tied name from its partner so every
checkpoint has the same keys, and `save_like` writes exactly the keys the base checkpoint stored, so the
output loads the way the base does. A key, shape or tie mismatch raises LabError naming the tensor.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from lab_shared.errors import LabError
from lab_shared.io import atomic_dir

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# output embedding -> input embeddings it is tied to when the config says tie_word_embeddings
OUTPUT_EMBEDDINGS = ("lm_head.weight", "embed_out.weight")
INPUT_EMBEDDINGS = (
    "model.embed_tokens.weight", "transformer.wte.weight", "model.decoder.embed_tokens.weight",
    "gpt_neox.embed_in.weight", "embed_tokens.weight", "wte.weight",
)  # fmt: skip


@dataclass
class Checkpoint:
    """A loaded checkpoint: its tensors, where they came from, and the folder's config (if any)."""

    path: Path
    state: dict[str, Tensor]
    stored_keys: list[str]  # keys as stored on disk (before tied names were filled)
    folder: Path | None = None  # the model folder (None for a bare .safetensors file)
    config: dict = field(default_factory=dict)

    @property
    def ties_embeddings(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", True))


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises several types for truncated/garbage files
        raise LabError(
            f"cannot read {path}: not a valid safetensors file ({str(e).splitlines()[0]})"
        ) from None


def _load_bin(path: Path) -> dict[str, Tensor]:
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise LabError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise LabError(f"{path} does not hold a flat dict of tensors")
    return sd


def _load_index(path: Path, loader) -> dict[str, Tensor]:
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise LabError(f"cannot read shard index {path}: {e}") from None
    if not all(isinstance(s, str) for s in shards):
        raise LabError(f"cannot read shard index {path}: shard names must be strings")
    state: dict[str, Tensor] = {}
    for shard in shards:
        shard_path = path.parent / shard
        if not shard_path.is_file():
            raise LabError(f"{path}: shard {shard} is missing")
        state.update(loader(shard_path))
    return state


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint file or folder (see the module docstring); LabError if there is none."""
    path = Path(path)
    if not path.exists():
        raise LabError(f"checkpoint not found: {path}")
    folder = None
    if path.is_dir():
        folder = path
        found = [name for name in WEIGHT_FILES if (path / name).is_file()]
        if not found:
            raise LabError(f"{path} holds no model weights (looked for {', '.join(WEIGHT_FILES)})")
        name = found[0]
        file = path / name
        if name == "model.safetensors":
            state = _load_safetensors(file)
        elif name == "model.safetensors.index.json":
            state = _load_index(file, _load_safetensors)
        elif name == "pytorch_model.bin":
            state = _load_bin(file)
        else:
            state = _load_index(file, _load_bin)
    elif path.suffix == ".safetensors":
        state = _load_safetensors(path)
    elif path.suffix in (".bin", ".pt", ".pth"):
        state = _load_bin(path)
    else:
        raise LabError(f"{path}: expected a .safetensors file or a model folder")
    if not state:
        raise LabError(f"{path} holds no tensors")
    config = {}
    if folder is not None and (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text())
        except ValueError as e:
            raise LabError(f"corrupt config.json in {folder}: {e}") from None
    return Checkpoint(path, dict(state), list(state), folder, config)


def _tied_partner(key: str, keys) -> str | None:
    """The input-embedding name present in `keys` that output embedding `key` ties to (or vice versa)."""
    if key in OUTPUT_EMBEDDINGS:
        return next((k for k in INPUT_EMBEDDINGS if k in keys), None)
    if key in INPUT_EMBEDDINGS:
        return next((k for k in OUTPUT_EMBEDDINGS if k in keys), None)
    return None


def align(base: Checkpoint, others: list[Checkpoint]) -> list[str]:
    """Give every checkpoint the same keys, filling tied embedding names from their partner; check shapes.

    Returns the keys to merge: each tensor once, i.e. a tied output embedding is left out (it is written
    back from its partner), so TIES' global top-k sees every weight once. Raises LabError naming the first tensor that is missing, unexpected, of another shape, or tied in one
    checkpoint but stored with different values in another.
    """
    every = [base, *others]
    union = set().union(*(c.state for c in every))
    for ckpt in every:
        for key in sorted(union - set(ckpt.state)):
            partner = _tied_partner(key, ckpt.state)
            if partner is not None and ckpt.ties_embeddings:
                ckpt.state[key] = ckpt.state[partner]  # same tensor object: tied
            else:
                owner = next(c for c in every if key in c.state)
                raise LabError(f"tensor '{key}' is in {owner.path} but missing from {ckpt.path}")
    for ckpt in others:
        for key, ref in base.state.items():
            t = ckpt.state[key]
            if tuple(t.shape) != tuple(ref.shape):
                raise LabError(
                    f"tensor '{key}' has shape {tuple(t.shape)} in {ckpt.path} but {tuple(ref.shape)} in {base.path}"
                )
    # A tie the base relies on (it stores one name only) must hold in every model, else the merge is lost.
    for key in set(base.state) - set(base.stored_keys):
        partner = _tied_partner(key, base.stored_keys)
        for ckpt in others:
            if partner and not torch.equal(ckpt.state[key], ckpt.state[partner]):
                raise LabError(
                    f"tensor '{key}' is tied to '{partner}' in {base.path} but not in {ckpt.path}; "
                    "cannot merge tied and untied checkpoints"
                )
    keys = []
    for key in base.state:
        partner = _tied_partner(key, base.state) if key in OUTPUT_EMBEDDINGS else None
        if partner and all(torch.equal(c.state[key], c.state[partner]) for c in every):
            continue
        keys.append(key)
    return keys


def _copy_side_files(src: Path, dst: Path) -> None:
    """Copy config, tokenizer and other small non-weight files of a model folder."""
    for item in src.iterdir():
        if item.is_file() and not item.name.endswith((".safetensors", ".bin", ".index.json", ".pt", ".pth")):
            if item.name not in ("merge.json",):
                shutil.copy2(item, dst / item.name)


def save_like(
    state: dict[str, Tensor], base: Checkpoint, out: str | Path, info: dict, overwrite: bool = False
) -> Path:
    """Write `state` as the base is stored (same keys; a model folder or a .safetensors file), atomically.

    A folder is assembled in a hidden temp folder beside `out` and renamed into place; nothing is left at
    `out` if anything fails. An existing `out` is replaced only with `overwrite`.
    """
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and not overwrite:
        raise LabError(f"output {out} already exists (pass --overwrite to replace it)")
    keep = {}
    for k in base.stored_keys:
        src = k if k in state else _tied_partner(k, state)
        if src is None:
            raise LabError(f"merged model lacks tensor '{k}'")
        keep[k] = state[src].detach().contiguous().cpu().clone()
    metadata = {"format": "pt", "merge": json.dumps(info, default=str)}
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".safetensors":
        if out.is_dir():
            raise LabError(f"output {out} is a folder, not a .safetensors file")
        from lab_shared.io import atomic_path

        with atomic_path(out) as tmp:
            save_file(keep, str(tmp), metadata=metadata)
        return out
    return write_merge_folder(
        out, base.folder, lambda path: save_file(keep, str(path), metadata=metadata), info
    )


def write_merge_folder(out: Path, side_from: Path | None, write_model, info: dict) -> Path:
    """Assemble a merged model folder (the base's side files, `write_model(path)`'s model.safetensors,
    merge.json) in a temp folder and swap it onto `out` (`lab_shared.io.atomic_dir`: a crash leaves the old
    output or the new one, never neither)."""
    if out.is_file():
        raise LabError(f"output {out} is a file, not a folder (name it .safetensors to write a file)")
    with atomic_dir(out, prefix=f".tmp-{out.name}.") as tmp:
        if side_from is not None:
            _copy_side_files(side_from, tmp)
        write_model(tmp / "model.safetensors")
        (tmp / "merge.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return out

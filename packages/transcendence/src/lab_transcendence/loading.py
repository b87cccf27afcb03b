"""Which kind of model a folder holds (from its config.json), and loading either kind.

`transcript`: the paper's GPT (a Hugging Face GPT-2 folder, export.py); `position`: the position policy
(model_type `lab_chess_position`, position_train.py). Commands that accept only one kind say so in one
line (exit 2) instead of failing inside.
"""

from __future__ import annotations

from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.io import read_json


def _folder(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise LabError(f"model folder not found: {path}")
    for cand in (path, path / "model", path / "export"):
        if (cand / "config.json").is_file() and (cand / "model.safetensors").is_file():
            return cand
    raise LabError(f"no exported chess model in {path} (expected config.json + model.safetensors)")


def model_kind(path: str | Path) -> str:
    """`transcript` or `position`; a LabError for anything else."""
    from lab_transcendence.position_config import MODEL_TYPE

    folder = _folder(path)
    try:
        mt = read_json(folder / "config.json").get("model_type")
    except (ValueError, AttributeError):
        raise LabError(f"{folder}/config.json is not a JSON object") from None
    if mt == "gpt2":
        return "transcript"
    if mt == MODEL_TYPE:
        return "position"
    raise LabError(f"{folder}: unknown model_type {mt!r} (expected gpt2 or {MODEL_TYPE})")


def require_kind(path: str | Path, allowed: tuple[str, ...], command: str) -> str:
    kind = model_kind(path)
    if kind not in allowed:
        raise LabError(f"`{command}` needs a {' or '.join(allowed)} model; {path} is a {kind} model")
    return kind


def load_any(path: str | Path, device="cpu") -> tuple[str, object, object, dict]:
    """(kind, model, tokenizer or None, meta) of an exported folder of either kind."""
    kind = model_kind(path)
    if kind == "position":
        from lab_transcendence.position_train import load_position_model

        model, meta = load_position_model(_folder(path), device)
        return kind, model, None, meta
    from lab_transcendence.export import load_model

    model, tok, meta = load_model(path, device)
    return kind, model, tok, meta


def weights_hash(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a model folder's weights file: the key of its finished games."""
    import hashlib

    h = hashlib.sha256()
    with open(_folder(path) / "model.safetensors", "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]

"""The task-sequence registry: what a continual-learning run trains on, independent of the modality.

A *sequence* is built by a builder ``builder(cfg: SequenceConfig) -> TaskSequence`` registered under a name:

    register_sequence("my-seq", my_builder)                  # a callable
    register_sequence("lm-domains", "lab_sfa.lm.sequence:build")   # or "module:function", imported lazily

``get_sequence(name, cfg)`` returns a ``TaskSequence`` holding:

- ``pretrain``: a ``Task`` trained before the sequence (theta_pre; None = start from the random init);
- ``tasks``: the ordered ``Task`` list; ``Task.index`` is its position (0..K-1), which multi-head models use
  to pick a head; ``Task.train`` / ``Task.test`` / ``Task.val`` are map-style torch Datasets of examples;
- ``make_model()``: a fresh ``nn.Module`` (same architecture every call);
- ``loss_fn(model, batch) -> Tensor``: the scalar training loss of a collated batch (what the core trainer calls);
- ``evaluate(model, task, split="test") -> dict[str, float]``: metrics of ``model`` on ``task``; the entry
  named ``metric`` (``"accuracy"`` for images) fills the accuracy matrix R[i][j];
- ``collate_fn``: how to batch examples (None = torch's default_collate).

Methods (replay, EWC, merges, ...) only ever use this interface: replay stores raw examples of ``Task.train``
and batches them with ``collate_fn``; EWC's Fisher takes gradients of ``loss_fn``; merges work on
``model.state_dict()``. So a sequence of text domains works with every method unchanged.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from lab_sfa.tasktypes import Builder, SequenceConfig, Task, TaskSequence
from lab_shared.errors import LabError

__all__ = ["Builder", "SequenceConfig", "Task", "TaskSequence", "get_sequence", "register_sequence",
           "sequence_names", "validate_sequence"]  # fmt: skip


_REGISTRY: dict[str, Builder | str] = {
    "default": "lab_sfa.images.sequences:build_default",
    "domains": "lab_sfa.images.sequences:build_default",
    "split-fmnist": "lab_sfa.images.sequences:build_split_fmnist",
    "paper": "lab_sfa.images.paper:build_paper",
    "paper-long": "lab_sfa.images.paper:build_paper_long",
    "lm-domains": "lab_sfa.lm.sequence:build",
    "lm": "lab_sfa.lm.hf_sequence:build",
}


def register_sequence(name: str, builder: Builder | str) -> None:
    """Register ``builder`` (a callable or a lazy "module:function" string) under ``name``."""
    _REGISTRY[name] = builder


def sequence_names() -> list[str]:
    """The registered sequence names."""
    return sorted(_REGISTRY)


def _resolve(builder: Builder | str) -> Builder:
    if callable(builder):
        return builder
    module, _, func = builder.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise LabError(f"sequence builder '{builder}' cannot be loaded: {e}") from e


def validate_sequence(cfg: SequenceConfig) -> None:
    """The counts, sizes and choices of a SequenceConfig: one LabError line before any data is read."""
    for key, lo in (("n_train", 0), ("n_test", 0), ("n_val", 0), ("n_pretrain", 0), ("data_seed", 0),
                    ("order", 0), ("width", 1), ("eval_batch_size", 1), ("lora_rank", 0)):  # fmt: skip
        if getattr(cfg, key, lo) < lo:
            raise LabError(f"sequence.{key} must be >= {lo}, got {getattr(cfg, key)}")
    if cfg.head not in ("auto", "shared", "multi") or cfg.norm not in ("auto", "bn", "none"):
        raise LabError(f"sequence.head must be auto|shared|multi and sequence.norm auto|bn|none, got "
                       f"{cfg.head!r}, {cfg.norm!r}")  # fmt: skip


def get_sequence(name: str, cfg: SequenceConfig | None = None) -> TaskSequence:
    """Build the sequence ``name`` (a registered name, or a path to a task-sequence ``.toml`` file)."""
    cfg = cfg or SequenceConfig(name=name)
    validate_sequence(cfg)
    if name.endswith(".toml") or (name not in _REGISTRY and Path(name).suffix):
        from lab_sfa.lm.taskfile import build_from_file as build_text_file
        from lab_sfa.lm.taskfile import sequence_kind

        kind = sequence_kind(Path(name))
        if kind in ("text", "lm"):  # text domains (byte LM) / JSONL tasks on a Hugging Face LM (lab_sfa.lm)
            return build_text_file(Path(name), cfg)
        from lab_sfa.images.taskfile import build_from_file

        return build_from_file(Path(name), cfg)
    if name not in _REGISTRY:
        raise LabError(f"unknown sequence '{name}' (known: {', '.join(sequence_names())}, or a .toml file)")
    return _resolve(_REGISTRY[name])(cfg)

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_shared.errors import LabError


@dataclass
class SequenceConfig:
    """Options every builder receives; a builder ignores what does not apply to its modality."""

    name: str = "default"  # a registered name, or a path to a task-sequence TOML file
    model: str = "cnn"  # cnn | resnet (images); builders for other modalities read their own meaning
    width: int = 16  # channels of the first conv layer (images) / model width
    head: str = "auto"  # auto | shared | multi (one output head per task)
    norm: str = "auto"  # auto | bn | none (BatchNorm in the image models; auto: cnn none, resnet bn)
    n_train: int = 2000  # training examples kept per task (0 = all)
    n_test: int = 1000  # test examples kept per task (0 = all)
    n_val: int = 500  # validation examples per task, carved from the training split (0 = none)
    n_pretrain: int = 10000  # examples of the pretraining task (0 = all)
    data_seed: int = 0  # seed of the subsets and of the permutation task (fixed across run seeds)
    order: int = 0  # task order (paper sequences): 0 = as listed, 1 = reversed, n >= 2 = seeded permutation
    eval_batch_size: int = 500


@dataclass
class Task:
    """One task of a sequence: its data splits and its position."""

    name: str
    train: Any  # map-style Dataset
    test: Any
    val: Any = None
    index: int = 0
    n_classes: int = 0
    info: dict = field(default_factory=dict)


@dataclass
class TaskSequence:
    """Everything a continual-learning run needs, whatever the modality (see the module docstring)."""

    name: str
    tasks: list[Task]
    pretrain: Task | None
    make_model: Callable[[], Any]
    loss_fn: Callable[[Any, Any], Any]
    evaluate: Callable[..., dict[str, float]]
    metric: str = "accuracy"
    collate_fn: Callable | None = None
    info: dict = field(default_factory=dict)


Builder = Callable[[SequenceConfig], TaskSequence]

_REGISTRY: dict[str, Builder | str] = {
    "default": "lab_sfa.images.sequences:build_default",
    "domains": "lab_sfa.images.sequences:build_default",
    "split-fmnist": "lab_sfa.images.sequences:build_split_fmnist",
    "paper": "lab_sfa.images.paper:build_paper",
    "paper-long": "lab_sfa.images.paper:build_paper_long",
    "lm-domains": "lab_sfa.lm.sequence:build",
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
                    ("order", 0), ("width", 1), ("eval_batch_size", 1)):  # fmt: skip
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
        from lab_sfa.lm.taskfile import is_text_sequence

        if is_text_sequence(Path(name)):  # kind = "text": text domains for the LM (lab_sfa.lm)
            return build_text_file(Path(name), cfg)
        from lab_sfa.images.taskfile import build_from_file

        return build_from_file(Path(name), cfg)
    if name not in _REGISTRY:
        raise LabError(f"unknown sequence '{name}' (known: {', '.join(sequence_names())}, or a .toml file)")
    return _resolve(_REGISTRY[name])(cfg)

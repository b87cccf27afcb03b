"""The shared types of task sequences: `SequenceConfig`, `Task`, `TaskSequence` (a leaf module).

Builders (`lab_sfa.images.*`, `lab_sfa.lm.*`) and the registry (`lab_sfa.sequences`) both import these from
here, so no builder module needs the registry and the registry imports builders only by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
    lora_rank: int = (
        0  # LM sequences on a Hugging Face model: LoRA adapters of this rank (0 = full fine-tuning)
    )


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

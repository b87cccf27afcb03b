"""`RunConfig`: everything one `lab sfa run` depends on (sequence, method, per-task trainer, pretraining),
and its checks. `resolve_run` is the one door: it validates every option and fills the chosen method's own
defaults, so config.json records exactly what ran and a resume compares like with like.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from lab_sfa.methods.config import MethodConfig, resolve_method
from lab_sfa.tasktypes import SequenceConfig
from lab_shared.errors import LabError
from lab_shared.trainer import TrainerConfig


def _task_trainer() -> TrainerConfig:
    return TrainerConfig(
        max_steps=200, batch_size=64, lr=1e-3, lr_schedule="constant", log_every=50, progress=False
    )


@dataclass
class RunConfig:
    """One run: the sequence, the method, the per-task trainer, and the pretraining."""

    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    method: MethodConfig = field(default_factory=MethodConfig)  # type: ignore[valid-type]
    trainer: TrainerConfig = field(default_factory=_task_trainer)  # per task: max_steps = T
    pretrain_steps: int = 800
    pretrain_lr: float = 1e-3
    pretrain_optimizer: str = "adamw"  # pretraining's own optimizer (independent of the tasks' one)
    seed: int = 0
    curves: bool = True
    curve_points: int = 4  # curve evaluations per task for methods without averaging points
    curve_samples: int = 300  # test examples per task used for the curves
    cache_pretrained: bool = True  # reuse the pretrained model across runs with the same settings
    threads: int = 1  # torch CPU threads (1 avoids oversubscription on shared small machines; 0 = torch's)
    barrier_points: int = 0  # > 1: evaluate that many points on the line from each task's start to its end


def validate_run(cfg: RunConfig) -> None:
    """Check the options; one LabError line otherwise."""
    resolve_run(cfg)


def resolve_run(cfg: RunConfig) -> RunConfig:
    """`cfg` checked, with the method's defaults filled in (a parameter the method does not use is refused)."""
    method = resolve_method(cfg.method)
    if cfg.pretrain_steps < 0:
        raise LabError(f"pretrain_steps must be >= 0, got {cfg.pretrain_steps}")
    if cfg.barrier_points < 0 or cfg.barrier_points == 1:
        raise LabError(f"barrier_points must be 0 (off) or >= 2, got {cfg.barrier_points}")
    for key, lo in (("curve_points", 1), ("curve_samples", 0), ("threads", 0), ("seed", 0)):
        if getattr(cfg, key) < lo:
            raise LabError(f"{key} must be >= {lo}, got {getattr(cfg, key)}")
    if not 0 < cfg.pretrain_lr < math.inf:
        raise LabError(f"pretrain_lr must be a finite number > 0, got {cfg.pretrain_lr}")
    if cfg.pretrain_optimizer not in ("adamw", "sgd"):
        raise LabError(f"pretrain_optimizer must be adamw or sgd, got '{cfg.pretrain_optimizer}'")
    cfg.trainer.validate()
    from lab_sfa.sequences import validate_sequence

    validate_sequence(cfg.sequence)
    return dataclasses.replace(cfg, method=method) if method is not cfg.method else cfg

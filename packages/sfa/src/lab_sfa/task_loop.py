"""Run one continual-learning experiment: pretrain (cached), then train the tasks in order with a method.

After each task k every task j is evaluated (test and validation splits) to fill R[k][j]; with ``curves`` the
accuracy on every task is also recorded during training, at each SFA averaging point (or at
``curve_points`` evenly spaced points per task for the other methods): the paper's curves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lab_sfa.fingerprint import dataset_fingerprint, settings_key, tensors_fingerprint
from lab_sfa.methods.base import MethodConfig, load_state, make_method, model_state, validate_method
from lab_sfa.metrics import summarize
from lab_sfa.sequences import SequenceConfig, TaskSequence, get_sequence
from lab_shared.callbacks import Callback
from lab_shared.config import config_to_dict
from lab_shared.errors import LabError
from lab_shared.io import load_tensors, save_tensors
from lab_shared.logs import get_logger
from lab_shared.rundir import RunDir, runs_root
from lab_shared.seed import seed_everything
from lab_shared.trainer import Trainer, TrainerConfig, enable_tracking

log = get_logger("lab.sfa")


def _task_trainer() -> TrainerConfig:
    return TrainerConfig(
        max_steps=200, batch_size=64, lr=1e-3, lr_schedule="constant", log_every=50, progress=False
    )


@dataclass
class RunConfig:
    """One run: the sequence, the method, the per-task trainer, and the pretraining."""

    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
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
    validate_method(cfg.method)
    if cfg.pretrain_steps < 0:
        raise LabError(f"pretrain_steps must be >= 0, got {cfg.pretrain_steps}")
    if cfg.barrier_points < 0 or cfg.barrier_points == 1:
        raise LabError(f"barrier_points must be 0 (off) or >= 2, got {cfg.barrier_points}")
    cfg.trainer.validate()


class _Curves(Callback):
    """Records accuracy on every task at given steps (SFA: right after each averaging)."""

    def __init__(self, record, every: int | None):
        self.record, self.every = record, every

    def on_after_optimizer_step(self, trainer) -> None:
        if self.every and (trainer.step % self.every == 0 or trainer.step == trainer.config.max_steps):
            self.record(trainer)


class _MetricsTap(Callback):
    """Forwards the trainer's logged values to the run's metrics.jsonl with a global step."""

    def __init__(self, run_dir: RunDir | None, offset: int):
        self.run_dir, self.offset = run_dir, offset

    def on_train_start(self, trainer) -> None:
        if self.run_dir is not None:  # --set trainer.tensorboard=true / trainer.mlflow=true
            enable_tracking(self.run_dir, trainer.config)

    def on_log(self, trainer, metrics: dict) -> None:
        if self.run_dir is not None:
            self.run_dir.metrics.log(step=self.offset + trainer.step, **metrics)


def _pretrain_key(cfg: RunConfig, seq: TaskSequence, model: torch.nn.Module) -> str:
    """Cache key of the pretrained model: the pretraining data's bytes, the architecture and the settings."""
    return settings_key(
        dataset_fingerprint(seq.pretrain.train),
        repr(model),
        {
            "steps": cfg.pretrain_steps,
            "lr": cfg.pretrain_lr,
            "bs": cfg.trainer.batch_size,
            "opt": cfg.pretrain_optimizer,
            "seed": cfg.seed,
        },
    )


def _finetune_cache(cfg: RunConfig, theta_pre_hash: str, task, k: int) -> Path | None:
    """Where an independent fine-tune of task k from theta_pre is cached (merge methods share them).

    Keyed by the bytes of theta_pre and of the task's training data, the trainer settings and the seed, so
    editing a task file (or changing the pretraining) never reuses a stale fine-tune.
    """
    if not cfg.cache_pretrained:
        return None
    trainer = {n: v for n, v in config_to_dict(cfg.trainer).items() if n not in ("progress", "log_every")}
    key = settings_key(theta_pre_hash, dataset_fingerprint(task.train), trainer, cfg.seed, k)
    return runs_root() / "sfa" / "cache" / f"finetune-{key}.safetensors"


def pretrain(model: torch.nn.Module, seq: TaskSequence, cfg: RunConfig) -> dict[str, Any]:
    """Train on the sequence's pretraining task (cached in $LAB_RUNS/sfa/cache by settings and seed)."""
    if seq.pretrain is None or cfg.pretrain_steps == 0:
        return {"pretrained": False}
    cache = runs_root() / "sfa" / "cache" / f"pretrain-{_pretrain_key(cfg, seq, model)}.safetensors"
    if cfg.cache_pretrained and cache.exists():
        load_state(model, load_tensors(cache))
        return {"pretrained": True, "cached": True, "cache": str(cache)}
    tcfg = TrainerConfig(
        max_steps=cfg.pretrain_steps,
        batch_size=cfg.trainer.batch_size,
        lr=cfg.pretrain_lr,
        optimizer=cfg.pretrain_optimizer,
        lr_schedule="cosine",
        seed=cfg.seed + 999,
        log_every=max(1, cfg.pretrain_steps // 4),
        progress=cfg.trainer.progress,
        device=cfg.trainer.device,
    )
    t0 = time.perf_counter()
    Trainer(model, seq.loss_fn, seq.pretrain.train, tcfg, log_prefix="pretrain/").fit()
    if cfg.cache_pretrained:
        save_tensors({k: v.contiguous() for k, v in model.state_dict().items()}, cache)
    return {"pretrained": True, "cached": False, "time_s": round(time.perf_counter() - t0, 2)}


@torch.no_grad()
def line_scan(seq: TaskSequence, probe: torch.nn.Module, start: dict, end: dict, tasks: list, n: int) -> dict:
    """Metric and loss of every task in ``tasks`` at n points theta(a) = (1 - a) start + a end, a in [0, 1].

    At a task boundary, start = theta_o (the model when the task began) and end = the model after it: a dip
    in the middle is a loss barrier; a bump above both ends is where averaging (SFA, WiSE-FT) gains.
    """
    alphas = [i / (n - 1) for i in range(n)]
    acc, loss = [], []
    for a in alphas:
        load_state(
            probe,
            {k: torch.lerp(v, end[k], a) if v.is_floating_point() else end[k] for k, v in start.items()},
        )
        ms = [seq.evaluate(probe, t, "test") for t in tasks]
        acc.append([m[seq.metric] for m in ms])
        loss.append([m.get("loss") for m in ms])
    return {"alpha": alphas, "acc": acc, "loss": loss}


def _subset_task(task, n: int):
    """A copy of ``task`` whose test split keeps only the first n examples (fast curve evaluations)."""
    import copy

    sub = copy.copy(task)
    test = task.test
    if hasattr(test, "x") and n and len(test) > n:
        small = copy.copy(test)
        small.x, small.y = test.x[:n], test.y[:n]
        sub.test = small
    return sub


def run_continual(cfg: RunConfig, run_dir: RunDir | None = None) -> dict[str, Any]:
    """Pretrain, train every task with the method, and return R, the summary metrics, curves and costs."""
    validate_run(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    seq = get_sequence(cfg.sequence.name, cfg.sequence)
    model = seq.make_model()
    pre = pretrain(model, seq, cfg)
    theta_pre = model_state(model)
    theta_pre_hash = tensors_fingerprint(theta_pre) if cfg.cache_pretrained else ""
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    method = make_method(cfg.method, seq, theta_pre)
    K = len(seq.tasks)
    names = [t.name for t in seq.tasks]

    def eval_all(split: str) -> list[float]:
        return [seq.evaluate(model, t, split)[seq.metric] for t in seq.tasks]

    has_val = all(t.val is not None for t in seq.tasks)
    r0 = eval_all("test")
    R, Rval, curves, costs = [], [], [], []
    curve_tasks = [_subset_task(t, cfg.curve_samples) for t in seq.tasks]
    T = cfg.trainer.max_steps
    t_train, n_trained = 0.0, 0
    barrier, probe = [], (seq.make_model() if cfg.barrier_points else None)
    for k in range(K):
        start = model_state(model) if cfg.barrier_points else None
        method.before_task(model, k)
        data, collate = method.task_data(k)

        def record(trainer, k=k):
            accs = [seq.evaluate(trainer.model, t, "test")[seq.metric] for t in curve_tasks]
            curves.append({"task": k, "step": trainer.step, "global_step": k * T + trainer.step, "acc": accs})
            trainer.model.train()

        if hasattr(method, "steps"):
            method.steps = T
        if cfg.curves and cfg.method.name == "sfa":
            method.listeners = [record]
        cbs = method.callbacks(model, k)
        if cfg.curves and cfg.method.name != "sfa":
            cbs.append(_Curves(record, max(1, T // max(1, cfg.curve_points))))
        cbs.append(_MetricsTap(run_dir, k * T))
        tcfg = TrainerConfig(**{**config_to_dict(cfg.trainer), "seed": cfg.seed * 1000 + k})
        if cfg.curves and k == 0:
            curves.append({"task": -1, "step": 0, "global_step": 0, "acc": [r0[j] for j in range(K)]})
        t0 = time.perf_counter()
        ft_cache = (
            _finetune_cache(cfg, theta_pre_hash, seq.tasks[k], k)
            if getattr(method, "independent_finetunes", False)
            else None
        )
        if ft_cache is not None and ft_cache.exists() and not cfg.curves:
            load_state(model, load_tensors(ft_cache))  # same start, data and steps: the same fine-tune
        else:
            trainer = Trainer(
                model, seq.loss_fn, data, tcfg, callbacks=cbs, collate_fn=collate, log_prefix=f"t{k}/"
            )
            trainer.fit()
            del trainer  # drop its optimizer and callbacks (e.g. an old anchor) before the next task
            if ft_cache is not None:
                save_tensors({n: v.contiguous() for n, v in model.state_dict().items()}, ft_cache)
            t_train += time.perf_counter() - t0
            n_trained += T
        method.after_task(model, k)
        if cfg.barrier_points:
            scan = line_scan(seq, probe, start, model_state(model), curve_tasks[: k + 1], cfg.barrier_points)
            barrier.append({"task": k, **scan})
        R.append(eval_all("test"))
        if has_val:
            Rval.append(eval_all("val"))
        held = method.held_tensors()
        costs.append(
            {
                "task": k,
                "extra_param_copies": sum(t.numel() for t in held) / n_params,
                "extra_bytes": sum(t.numel() * t.element_size() for t in held),
                "stored_examples": method.stored_examples(),
            }
        )
        log.info(
            "%s task %d/%d (%s): acc %s",
            cfg.method.name,
            k + 1,
            K,
            names[k],
            " ".join(f"{a:.3f}" for a in R[-1]),
        )
        if run_dir is not None:
            run_dir.metrics.log(step=(k + 1) * T, task=k, **{f"acc/{n}": a for n, a in zip(names, R[-1])})
    summary = summarize(R, r0)
    results: dict[str, Any] = {
        "method": cfg.method.name,
        "sequence": seq.name,
        "seed": cfg.seed,
        "tasks": names,
        "metric": seq.metric,
        "R": R,
        "r0": r0,
        **summary,
        "curves": curves,
        "costs": costs,
        "max_extra_param_copies": max(c["extra_param_copies"] for c in costs),
        "max_stored_examples": max(c["stored_examples"] for c in costs),
        "n_params": n_params,
        "train_time_s": round(t_train, 2),
        "steps_per_s": n_trained / t_train if t_train > 0 else None,
        "pretrain": pre,
    }
    if barrier:
        results["barrier"] = barrier
    if has_val:
        results["Rval"] = Rval
        results["val_acc"] = float(sum(Rval[-1]) / K)
    return results

"""The training loop every lab package uses: a model, a loss function, a dataset and callbacks.

One step = `grad_accum` micro-batches forward/backward, optional clipping, callbacks, optimizer step.
Warmup + cosine LR, bf16 autocast on CUDA, optional torch.compile, DDP under torchrun, and checkpoints that
resume bit-for-bit (weights, optimizer, RNG states, data position, callback state).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from lab_shared import signals
from lab_shared.callbacks import Callback, CallbackList
from lab_shared.checkpoint import find_checkpoint, load_model_weights, load_optimizer_state, read_checkpoint
from lab_shared.checkpoint import save_checkpoint as _save_checkpoint
from lab_shared.config import config_to_dict
from lab_shared.data import ResumableSampler, to_device
from lab_shared.device import choose_device
from lab_shared.distributed import all_reduce_mean, barrier, init_distributed
from lab_shared.errors import ConfigError, LabError
from lab_shared.progress import progress
from lab_shared.rundir import RunDir
from lab_shared.seed import get_rng_state, set_rng_state


@dataclass
class TrainerConfig:
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 32  # per-process micro-batch
    grad_accum: int = 1
    # samples per optimizer step over all processes; when set, grad_accum is derived from it (see
    # resolve_grad_accum) so the same config trains on the same batch under any torchrun process count
    global_batch: int = 0
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 3e-4
    min_lr: float = 0.0  # cosine floor
    lr_schedule: str = "cosine"  # cosine | constant
    lr_decay_steps: int = 0  # cosine length; 0 = max_steps
    warmup_steps: int = 0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.0  # sgd
    grad_clip: float = 0.0  # 0 = off
    precision: str = "auto"  # auto (bf16 autocast on CUDA) | fp32 | bf16
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0  # 0 = only at the end
    ckpt_every: int = 0  # 0 = only at the end (when a run dir is given)
    keep_checkpoints: int = 2
    num_workers: int = 0
    shuffle: bool = True
    progress: bool = True
    tensorboard: bool = False  # also log scalars to RUN/tensorboard (pip install 'lab-shared[tensorboard]')
    mlflow: bool = False  # also log scalars and the config to MLflow (pip install mlflow-skinny)
    mlflow_uri: str = ""  # tracking URI; "" = file:<$LAB_RUNS or runs>/mlruns (offline)

    def validate(self) -> None:
        """Ranges of every knob: one ConfigError naming the key (lr=nan would otherwise train NaNs)."""
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "keep_checkpoints"):
            _check_int(name, getattr(self, name), 1)
        for name in ("lr_decay_steps", "warmup_steps", "eval_every", "ckpt_every", "num_workers"):
            _check_int(name, getattr(self, name), 0)
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ConfigError(
                "trainer.tensorboard=true needs tensorboard: pip install 'lab-shared[tensorboard]'"
            )
        if self.mlflow and importlib.util.find_spec("mlflow") is None:
            raise ConfigError("trainer.mlflow=true needs MLflow: pip install mlflow-skinny")
        if self.global_batch < 0:
            raise ConfigError(f"trainer.global_batch must be >= 0 (0 = off), got {self.global_batch}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"trainer.optimizer must be adamw or sgd, got '{self.optimizer}'")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"trainer.lr_schedule must be cosine or constant, got '{self.lr_schedule}'")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"trainer.precision must be auto, fp32 or bf16, got '{self.precision}'")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"trainer.lr must be a finite number > 0, got {self.lr}")
        for name in ("min_lr", "weight_decay", "momentum", "grad_clip"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"trainer.{name} must be a finite number >= 0, got {v}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not (0 <= v < 1):
                raise ConfigError(f"trainer.{name} must be in [0, 1), got {v}")


def enable_tracking(run_dir: RunDir, cfg: TrainerConfig) -> None:
    """The TensorBoard and MLflow sinks `cfg` asks for, on the run's metrics (idempotent)."""
    if cfg.tensorboard:
        run_dir.metrics.enable_tensorboard(run_dir.path / "tensorboard")
    if cfg.mlflow:
        from lab_shared.mlflow_sink import attach

        attach(run_dir.metrics, run_dir.path, cfg.mlflow_uri)


def _check_int(name: str, value: int, lo: int) -> None:
    if value < lo:
        raise ConfigError(f"trainer.{name} must be >= {lo}, got {value}")


def resolve_grad_accum(cfg: TrainerConfig, world_size: int) -> TrainerConfig:
    """The config with grad_accum = global_batch / (batch_size x processes), as the paper's code does.

    Without global_batch the config is returned as is (global batch = batch_size x grad_accum x processes).
    """
    if not cfg.global_batch:
        return cfg
    per_step = cfg.batch_size * world_size
    if cfg.global_batch % per_step:
        raise ConfigError(
            f"trainer.global_batch={cfg.global_batch} is not a multiple of trainer.batch_size x processes "
            f"= {cfg.batch_size} x {world_size}"
        )
    return dataclasses.replace(cfg, grad_accum=cfg.global_batch // per_step)


LossFn = Callable[[torch.nn.Module, Any], "torch.Tensor | dict[str, torch.Tensor]"]


def build_optimizer(model: torch.nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    """AdamW (weight decay on matrices only, as in nanoGPT) or SGD over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = next(iter(params)).is_cuda if params else False
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused
    )


def lr_at(step: int, cfg: TrainerConfig) -> float:
    """Linear warmup to lr, then cosine decay to min_lr over lr_decay_steps (or constant)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    total = cfg.lr_decay_steps or cfg.max_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (cfg.lr - cfg.min_lr)


class Trainer:
    """Train `model` on `train_data` with `loss_fn(model, batch)`; see TrainerConfig for the knobs."""

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        train_data: Dataset,
        config: TrainerConfig,
        *,
        callbacks: Iterable[Callback] = (),
        eval_fn: Callable[[Trainer], dict[str, float]] | None = None,
        run_dir: RunDir | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        collate_fn: Callable | None = None,
        log_prefix: str = "",
    ):
        config.validate()
        self.dist = init_distributed()
        self.is_main, self.world_size = self.dist.is_main, self.dist.world_size
        config = resolve_grad_accum(config, self.world_size)
        self.config = config
        self.device = choose_device(config.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.train_data = train_data
        self.eval_fn = eval_fn
        self.run_dir = run_dir
        if run_dir is not None and self.is_main:
            enable_tracking(run_dir, config)
        self.log_prefix = log_prefix
        self.callbacks = CallbackList(callbacks)
        self.optimizer = optimizer or build_optimizer(self.model, config)
        self.step = 0
        self.should_stop = False
        self.metrics: dict[str, float] = {}
        self.eval_metrics: dict[str, float] = {}
        # with a global batch, epochs hold whole optimizer steps, so any process count sees the same steps
        per_epoch = config.grad_accum if config.global_batch else 1
        if len(train_data) < config.batch_size * self.world_size * per_epoch:
            raise LabError(
                f"training data has {len(train_data)} examples, fewer than one batch "
                f"({config.batch_size} x {per_epoch} x {self.world_size} processes)"
            )
        self.sampler = ResumableSampler(
            len(train_data), config.batch_size, config.seed, config.shuffle, self.dist.rank, self.world_size
        )
        self.sampler.batch_multiple = per_epoch
        self.collate_fn = collate_fn or getattr(train_data, "collate_fn", None)
        self._batch_in_epoch = 0
        use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")
        self._autocast = (
            (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16))
            if use_bf16
            else contextlib.nullcontext
        )
        fwd = self.model
        if config.compile:
            fwd = torch.compile(fwd)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            fwd = DDP(fwd, device_ids=ids)
        self.train_model = fwd

    # ---- data -------------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        while True:
            self.sampler.start_batch = self._batch_in_epoch
            loader = DataLoader(
                self.train_data,
                batch_size=self.config.batch_size,
                sampler=self.sampler,
                drop_last=True,
                num_workers=self.config.num_workers,
                collate_fn=self.collate_fn,
                pin_memory=self.device.type == "cuda",
                generator=torch.Generator(),  # keeps the global RNG untouched, so resume is exact
            )
            for batch in loader:
                self._batch_in_epoch += 1
                yield batch
            self.sampler.epoch += 1
            self._batch_in_epoch = 0

    # ---- public helpers for callbacks -----------------------------------------------------------------
    def reset_optimizer_state(self) -> None:
        """Forget moment estimates (e.g. after SFA averages the weights); hyperparameters are kept."""
        self.optimizer.state.clear()

    def lr(self) -> float:
        return lr_at(self.step, self.config)

    # ---- the loop ---------------------------------------------------------------------------------------
    def fit(self, resume: str | Path | None = None) -> dict:
        """Train to max_steps. SIGINT/SIGTERM/SIGUSR1 stop it at the next step boundary with an exact
        checkpoint and `signals.Preempted` (exit code 128 + signal at the CLI)."""
        with signals.catch_stop_signals():
            return self._fit(resume)

    def _stop_requested(self) -> bool:
        """The signal flag; under DDP the ranks agree on it every 10th step (one tiny all-reduce), so all
        of them stop at the same step."""
        if not self.dist.enabled:
            return signals.stop_requested()
        if self.step % 10:
            return False
        return all_reduce_mean([float(signals.stop_requested())])[0] > 0

    def _preempt(self, checkpointed: bool) -> None:
        path = None
        if self.run_dir is not None:
            path = find_checkpoint(self.run_dir.path) if checkpointed else self.save_checkpoint()
        raise signals.Preempted(self.step, path, self.run_dir.path if self.run_dir else None)

    def _fit(self, resume: str | Path | None) -> dict:
        cfg = self.config
        if resume is not None:
            self.load_checkpoint(resume)
        params = [p for p in self.model.parameters() if p.requires_grad]
        model = self.train_model
        model.train()
        self.callbacks("on_train_start", self)
        batches = self._batches()
        extras_sum: dict[str, torch.Tensor] = {}
        n_since_log = 0
        t_log = time.perf_counter()
        t_start = t_log
        steps_start = self.step
        last_eval = last_ckpt = -1
        bar = progress(
            total=cfg.max_steps, desc=self.log_prefix or "train", enabled=cfg.progress and self.is_main
        )
        bar.n = self.step
        try:
            while self.step < cfg.max_steps and not self.should_stop:
                if self._stop_requested():  # a step boundary: everything up to self.step is done
                    self._preempt(checkpointed=last_ckpt == self.step)
                lr = lr_at(self.step, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.callbacks("on_step_start", self)
                for micro in range(cfg.grad_accum):
                    batch = to_device(next(batches), self.device)
                    no_sync = self.dist.enabled and micro < cfg.grad_accum - 1
                    with model.no_sync() if no_sync else contextlib.nullcontext():
                        with self._autocast():
                            out = self.loss_fn(model, batch)
                        if isinstance(out, dict):
                            loss = out["loss"]
                            for k, v in out.items():
                                extras_sum[k] = extras_sum.get(k, 0.0) + v.detach().float()
                        else:
                            loss = out
                            extras_sum["loss"] = extras_sum.get("loss", 0.0) + loss.detach().float()
                        (loss / cfg.grad_accum).backward()
                n_since_log += cfg.grad_accum
                if cfg.grad_clip > 0:
                    gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    extras_sum["grad_norm"] = (
                        extras_sum.get("grad_norm", 0.0) + gnorm.detach().float() * cfg.grad_accum
                    )
                self.callbacks("on_before_optimizer_step", self)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.callbacks("on_after_optimizer_step", self)
                bar.update(1, **{k: v for k, v in self.metrics.items() if k.endswith("loss")})
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    now = time.perf_counter()
                    self._log(extras_sum, n_since_log, lr, now - t_log)
                    extras_sum, n_since_log, t_log = {}, 0, now
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    self.evaluate()
                    last_eval = self.step
                if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.save_checkpoint()
                    last_ckpt = self.step
        finally:
            bar.close()
        if last_eval != self.step:
            self.evaluate()
        if self.run_dir is not None and last_ckpt != self.step:
            self.save_checkpoint()
        self.callbacks("on_train_end", self)
        elapsed = time.perf_counter() - t_start
        return {
            "step": self.step,
            "time_s": round(elapsed, 3),
            "steps_per_s": (self.step - steps_start) / elapsed if elapsed > 0 else 0.0,
            **self.metrics,
            **self.eval_metrics,
        }

    def _log(self, sums: dict[str, torch.Tensor], n_micro: int, lr: float, dt: float) -> None:
        keys = sorted(sums)
        values = [float(sums[k]) / max(1, n_micro) for k in keys]
        values = all_reduce_mean(values)
        steps = n_micro / self.config.grad_accum
        self.metrics = {f"{self.log_prefix}{k}": v for k, v in zip(keys, values)}
        self.metrics[f"{self.log_prefix}lr"] = lr
        self.metrics[f"{self.log_prefix}steps_per_s"] = steps / dt if dt > 0 else 0.0
        self.callbacks("on_log", self, self.metrics)
        if self.is_main and self.run_dir is not None:
            self.run_dir.metrics.log(step=self.step, **self.metrics)

    def evaluate(self) -> dict[str, float]:
        if self.eval_fn is None:
            return {}
        self.model.eval()
        with torch.no_grad():
            metrics = self.eval_fn(self)
        self.train_model.train()
        self.eval_metrics = {f"{self.log_prefix}{k}": float(v) for k, v in metrics.items()}
        self.callbacks("on_evaluate", self, self.eval_metrics)
        if self.is_main and self.run_dir is not None:
            self.run_dir.metrics.log(step=self.step, **self.eval_metrics)
        return self.eval_metrics

    # ---- checkpoints ------------------------------------------------------------------------------------
    def save_checkpoint(self, root: Path | None = None) -> Path | None:
        root = root or (self.run_dir.checkpoints if self.run_dir else None)
        if root is None:
            raise LabError("save_checkpoint needs a run directory or a folder")
        path = None
        if self.is_main:
            state = {
                "epoch": self.sampler.epoch,
                "batch_in_epoch": self._batch_in_epoch,
                "samples_in_epoch": self._batch_in_epoch * self.config.batch_size * self.world_size,
                "world_size": self.world_size,
                "config": config_to_dict(self.config),
                "callbacks": self.callbacks.state_dict(),
                "metrics": self.metrics,
            }
            path = _save_checkpoint(
                root,
                self.step,
                self.model,
                self.optimizer,
                state,
                get_rng_state(),
                self.config.keep_checkpoints,
            )
        barrier()
        return path

    def load_checkpoint(self, where: str | Path) -> None:
        """Restore everything from a checkpoint (a step folder, a run dir, or "auto" for this run's latest)."""
        if str(where) == "auto":
            if self.run_dir is None:
                raise LabError("resume='auto' needs a run directory")
            where = self.run_dir.path
        path = find_checkpoint(where)
        state, opt_tensors, rng_tensors = read_checkpoint(path)
        batch_in_epoch = self._resume_position(path, state)
        load_model_weights(self.model, path / "model.safetensors")
        if opt_tensors is not None and "optimizer" in state:
            load_optimizer_state(self.optimizer, opt_tensors, state["optimizer"])
        if rng_tensors is not None and "rng" in state:
            set_rng_state(rng_tensors, state["rng"])
        self.step = int(state["step"])
        if self.is_main and self.run_dir is not None:  # rows logged after this checkpoint come again
            self.run_dir.metrics.truncate_after(self.step)
        self.sampler.epoch = int(state.get("epoch", 0))
        self._batch_in_epoch = batch_in_epoch
        self.metrics = state.get("metrics", {})
        self.callbacks.load_state_dict(state.get("callbacks", []))

    def _resume_position(self, path: Path, state: dict) -> int:
        """Per-process batches already taken this epoch; another process count only with the same global batch.

        The position is stored in global samples, so with trainer.global_batch kept the run resumes on any
        number of processes at exactly the same sample.
        """
        world = int(state.get("world_size", 1))
        if world == self.world_size:
            return int(state.get("batch_in_epoch", 0))
        saved = int(state.get("config", {}).get("global_batch", 0))
        if (
            not self.config.global_batch
            or saved != self.config.global_batch
            or "samples_in_epoch" not in state
        ):
            raise LabError(
                f"checkpoint {path} was written by {world} processes; resume with the same number, or set the "
                f"same trainer.global_batch in both runs" + (f" (it was {saved})" if saved else "")
            )
        per_batch = self.config.batch_size * self.world_size
        samples = int(state["samples_in_epoch"])
        if samples % per_batch:
            raise LabError(f"checkpoint {path} stopped mid-batch for batch_size x processes = {per_batch}")
        return samples // per_batch

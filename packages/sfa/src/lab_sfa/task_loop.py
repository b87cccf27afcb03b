"""The task loop of `lab sfa run`: pretrain (cached), then train the sequence's tasks in order with a method.

After each task k every task j is evaluated (test and validation splits) to fill R[k][j]; with ``curves`` the
accuracy on every task is also recorded during training, at each SFA averaging point (or at
``curve_points`` evenly spaced points per task for the other methods): the paper's curves.

With a run folder the loop resumes per task (``run_state``): after pretraining and after every task it
saves the complete state, and inside a task the trainer checkpoints on SIGINT/SIGTERM/SIGUSR1 (and every
``trainer.ckpt_every`` steps). ``resume=True`` skips the finished tasks, continues the interrupted one from
its last checkpoint (or redoes it from its start) and ends bit-identical to an uninterrupted run; metrics
rows of the redone part are dropped before they are logged again.

Fault injection (tests, and trying preemption by hand): ``LAB_SFA_SIGNAL_AT=SIGNAL:TASK:STEP`` makes the run
send itself SIGNAL (e.g. SIGKILL, SIGTERM) when task TASK (0-based) reaches step STEP; STEP 0 is the task
boundary right after the previous task's state is saved.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lab_sfa import run_state
from lab_sfa.fingerprint import dataset_fingerprint, settings_key, tensors_fingerprint
from lab_sfa.methods.base import load_state, make_method, model_state
from lab_sfa.metrics import summarize
from lab_sfa.run_config import RunConfig, resolve_run, validate_run
from lab_sfa.sequences import TaskSequence, get_sequence
from lab_shared import signals
from lab_shared.callbacks import Callback
from lab_shared.checkpoint import find_checkpoint
from lab_shared.config import config_to_dict
from lab_shared.device import choose_device
from lab_shared.errors import LabError
from lab_shared.io import load_tensors, read_json, save_tensors
from lab_shared.logs import get_logger
from lab_shared.rundir import RunDir, runs_root
from lab_shared.seed import seed_everything, set_rng_state
from lab_shared.trainer import Trainer, TrainerConfig, enable_tracking

__all__ = ["RunConfig", "line_scan", "pretrain", "run_continual", "validate_run"]
log = get_logger("lab.sfa")
# trainer settings that never change the weights: left out of cache keys
_NOT_WEIGHTS = ("progress", "log_every", "ckpt_every", "keep_checkpoints", "eval_every", "tensorboard", "mlflow",
                "mlflow_uri")  # fmt: skip


class _Curves(Callback):
    """Records accuracy on every task at given steps (SFA: right after each averaging)."""

    def __init__(self, record, every: int | None):
        self.record, self.every = record, every

    def on_after_optimizer_step(self, trainer) -> None:
        if self.every and (trainer.step % self.every == 0 or trainer.step == trainer.config.max_steps):
            self.record(trainer)


class _TaskRows(Callback):
    """The curve rows recorded so far in the current task; part of the trainer's checkpoint, so a task
    resumed mid-way keeps the rows recorded before the stop."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def state_dict(self) -> dict:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        self.rows[:] = state.get("rows", [])


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


class _EverySteps(Callback):
    """trainer.ckpt_every inside a task: a checkpoint at every such step boundary (where a signal stops)."""

    def __init__(self, every: int, root: Path):
        self.every, self.root, self.last = every, root, -1

    def on_train_start(self, trainer) -> None:
        self.last = trainer.step  # a resumed task does not rewrite the checkpoint it started from

    def on_step_start(self, trainer) -> None:
        if trainer.step != self.last and trainer.step % self.every == 0:
            trainer.save_checkpoint(root=self.root)
            self.last = trainer.step


def _signal_at() -> tuple[int, int, int] | None:
    """(signal, task, step) from LAB_SFA_SIGNAL_AT, or None; a malformed value is one LabError line."""
    spec = os.environ.get("LAB_SFA_SIGNAL_AT", "")
    if not spec:
        return None
    try:
        name, task, step = spec.split(":")
        return int(getattr(signal, name)), int(task), int(step)
    except (ValueError, AttributeError):
        raise LabError(
            f"LAB_SFA_SIGNAL_AT must look like SIGTERM:1:5 (signal:task:step), got {spec!r}"
        ) from None


class _SignalAt(Callback):
    """Sends the LAB_SFA_SIGNAL_AT signal to this process at a step boundary inside the task."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step

    def on_step_start(self, trainer) -> None:
        if trainer.step == self.step:
            os.kill(os.getpid(), self.signum)


def _has_checkpoint(root: Path | None) -> Path | None:
    if root is None or not root.is_dir():
        return None
    try:
        return find_checkpoint(root)
    except LabError:
        return None


def _fit(trainer: Trainer, partial: Path | None, run_dir: RunDir | None, offset: int) -> None:
    """trainer.fit(), continued from the checkpoint in `partial` if there is one; on a stop signal the
    trainer's state is checkpointed into `partial` and Preempted names the run's global step."""
    ckpt = _has_checkpoint(partial)
    if ckpt is not None and run_dir is not None:  # rows logged after that checkpoint come again
        run_dir.metrics.truncate_after(offset + int(read_json(ckpt / "state.json")["step"]))
    try:
        trainer.fit(resume=ckpt)
    except signals.Preempted as e:
        if partial is None or run_dir is None:
            raise
        path = trainer.save_checkpoint(root=partial)
        raise signals.Preempted(offset + trainer.step, path, run_dir.path, signum=e.signum) from None


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
    trainer = {n: v for n, v in config_to_dict(cfg.trainer).items() if n not in _NOT_WEIGHTS}
    key = settings_key(theta_pre_hash, dataset_fingerprint(task.train), trainer, cfg.seed, k)
    return runs_root() / "sfa" / "cache" / f"finetune-{key}.safetensors"


def pretrain(
    model: torch.nn.Module,
    seq: TaskSequence,
    cfg: RunConfig,
    partial: Path | None = None,
    run_dir: RunDir | None = None,
) -> dict[str, Any]:
    """Train on the sequence's pretraining task (cached in $LAB_RUNS/sfa/cache by settings and seed);
    with `partial` and `run_dir`, a stop signal checkpoints it there and a later call continues it."""
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
    _fit(Trainer(model, seq.loss_fn, seq.pretrain.train, tcfg, log_prefix="pretrain/"), partial, run_dir, 0)
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


def _data_prints(seq: TaskSequence) -> list[str | None]:
    """Content hashes of every task's training data where it is held as tensors (cheap), for resume."""
    return [dataset_fingerprint(t.train) if hasattr(t.train, "x") else None for t in seq.tasks]


def run_continual(
    cfg: RunConfig,
    run_dir: RunDir | None = None,
    resume: bool = False,
    force: bool = False,
    checked: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Pretrain, train every task with the method, and return R, the summary metrics, curves and costs.

    With `run_dir` the state after pretraining and after each task is saved in it (and the final weights as
    model.safetensors); `resume` continues from the saved state (`force`: even if the task data changed).
    `checked` is called once the task data is known to match, before anything is written (the CLI records
    the resume in provenance.json there, so a refused resume changes no file).
    """
    cfg = resolve_run(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if run_dir is None:
        return _run(cfg, None, False, False, None)
    signals.clear()
    with signals.catch_stop_signals():  # a signal between two trainer steps stops at the next task boundary
        return _run(cfg, run_dir, resume, force, checked)


def _run(cfg: RunConfig, run_dir: RunDir | None, resume: bool, force: bool, checked) -> dict[str, Any]:
    seed_everything(cfg.seed)
    seq = get_sequence(cfg.sequence.name, cfg.sequence)
    device = choose_device(cfg.trainer.device)
    model = seq.make_model().to(device)  # where the trainer puts it: theta_pre and saved state live there
    K, T = len(seq.tasks), cfg.trainer.max_steps
    names = [t.name for t in seq.tasks]
    ckpts = run_dir.checkpoints if run_dir is not None else None
    start_dir = ckpts / run_state.PRETRAIN if ckpts is not None else None
    started = None
    if resume and start_dir is not None and run_state.has_state(start_dir):
        weights, _, started, rng = run_state.load_state(start_dir)
        load_state(model, weights)
        if started.get("task_data") != _data_prints(seq) and not force:
            raise LabError(
                f"refusing to resume {run_dir.path}: the tasks' training data changed since the run began "
                "(pass --force to resume anyway)"
            )
        pre = started["pretrain"]
    if checked is not None:
        checked()
    if started is None:
        partial = ckpts / "pretrain-partial" if ckpts is not None else None
        pre = pretrain(model, seq, cfg, partial, run_dir)
    theta_pre = model_state(model)
    theta_pre_hash = tensors_fingerprint(theta_pre) if cfg.cache_pretrained else ""
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    method = make_method(cfg.method, seq, theta_pre)

    def eval_all(split: str) -> list[float]:
        return [seq.evaluate(model, t, split)[seq.metric] for t in seq.tasks]

    has_val = all(t.val is not None for t in seq.tasks)
    r0 = started["r0"] if started else eval_all("test")
    curve_tasks = [_subset_task(t, cfg.curve_samples) for t in seq.tasks]
    probe = seq.make_model() if cfg.barrier_points else None
    if started is not None:
        set_rng_state(*rng)
    elif ckpts is not None:
        start = {"r0": r0, "pretrain": pre, "task_data": _data_prints(seq)}
        path = run_state.save_state(ckpts, run_state.PRETRAIN, theta_pre, {}, start)
        run_state.clear_pretrain_partial(ckpts)
        if signals.stop_requested():
            raise signals.Preempted(0, path, run_dir.path)
    loop: dict[str, Any] = {"R": [], "Rval": [], "curves": [], "costs": [], "barrier": [], "train_time_s": 0.0,
                            "steps_trained": 0}  # fmt: skip
    if cfg.curves:
        loop["curves"].append({"task": -1, "step": 0, "global_step": 0, "acc": list(r0)})
    first, inject = 0, _signal_at() if run_dir is not None else None
    if resume and ckpts is not None and (last := run_state.last_task(ckpts)) >= 0:
        weights, mstate, loop, rng = run_state.load_state(ckpts / run_state.task_name(last), device)
        load_state(model, weights)
        method.load_state_dict(mstate)
        set_rng_state(*rng)
        first = last + 1
    if run_dir is not None and resume:  # rows logged after the state it continues from come again
        ckpt = _has_checkpoint(run_state.partial_dir(ckpts, first)) if first < K else None
        run_dir.metrics.truncate_after(
            first * T + (int(read_json(ckpt / "state.json")["step"]) if ckpt else 0)
        )
    for k in range(first, K):
        start = model_state(model) if cfg.barrier_points else None
        method.before_task(model, k)
        data, collate = method.task_data(k)
        rows = _TaskRows()

        def record(trainer, k=k, rows=rows):
            accs = [seq.evaluate(trainer.model, t, "test")[seq.metric] for t in curve_tasks]
            rows.rows.append(
                {"task": k, "step": trainer.step, "global_step": k * T + trainer.step, "acc": accs}
            )
            trainer.model.train()

        if hasattr(method, "steps"):
            method.steps = T
        if cfg.curves and cfg.method.name == "sfa":
            method.listeners = [record]
        cbs = method.callbacks(model, k)
        if cfg.curves and cfg.method.name != "sfa":
            cbs.append(_Curves(record, max(1, T // max(1, cfg.curve_points))))
        cbs += [rows, _MetricsTap(run_dir, k * T)]
        partial = run_state.partial_dir(ckpts, k) if ckpts is not None else None
        if partial is not None and cfg.trainer.ckpt_every:
            cbs.append(_EverySteps(cfg.trainer.ckpt_every, partial))
        if inject is not None and inject[1] == k and inject[2] > 0:
            cbs.append(_SignalAt(inject[0], inject[2]))
        tcfg = TrainerConfig(**{**config_to_dict(cfg.trainer), "seed": cfg.seed * 1000 + k, "ckpt_every": 0})
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
            _fit(trainer, partial, run_dir, k * T)
            del trainer  # drop its optimizer and callbacks (e.g. an old anchor) before the next task
            if ft_cache is not None:
                save_tensors({n: v.contiguous() for n, v in model.state_dict().items()}, ft_cache)
            loop["train_time_s"] += time.perf_counter() - t0
            loop["steps_trained"] += T
        loop["curves"] += rows.rows
        method.after_task(model, k)
        if cfg.barrier_points:
            scan = line_scan(seq, probe, start, model_state(model), curve_tasks[: k + 1], cfg.barrier_points)
            loop["barrier"].append({"task": k, **scan})
        loop["R"].append(eval_all("test"))
        if has_val:
            loop["Rval"].append(eval_all("val"))
        held = method.held_tensors()
        loop["costs"].append(
            {
                "task": k,
                "extra_param_copies": sum(t.numel() for t in held) / n_params,
                "extra_bytes": sum(t.numel() * t.element_size() for t in held),
                "stored_examples": method.stored_examples(),
            }
        )
        acc = " ".join(f"{a:.3f}" for a in loop["R"][-1])
        log.info("%s task %d/%d (%s): acc %s", cfg.method.name, k + 1, K, names[k], acc)
        if run_dir is not None:
            run_dir.metrics.log(
                step=(k + 1) * T, task=k, **{f"acc/{n}": a for n, a in zip(names, loop["R"][-1])}
            )
            path = run_state.save_state(
                ckpts, run_state.task_name(k), model_state(model), method.state_dict(), loop
            )
            run_state.prune(ckpts, k)
            if inject is not None and inject[1:] == (k + 1, 0):
                os.kill(os.getpid(), inject[0])
            if signals.stop_requested() and k < K - 1:
                raise signals.Preempted((k + 1) * T, path, run_dir.path)
    if run_dir is not None:
        save_tensors(model_state(model), run_dir.file("model.safetensors"))  # the final weights
    return _results(cfg, seq, loop, r0, pre, n_params, has_val)


def _results(
    cfg: RunConfig, seq: TaskSequence, loop: dict, r0: list, pre: dict, n_params: int, has_val: bool
) -> dict:
    R, costs, t_train = loop["R"], loop["costs"], loop["train_time_s"]
    K = len(seq.tasks)
    results: dict[str, Any] = {
        "method": cfg.method.name,
        "sequence": seq.name,
        "seed": cfg.seed,
        "tasks": [t.name for t in seq.tasks],
        "metric": seq.metric,
        "R": R,
        "r0": r0,
        **summarize(R, r0),
        "curves": loop["curves"],
        "costs": costs,
        "max_extra_param_copies": max(c["extra_param_copies"] for c in costs),
        "max_stored_examples": max(c["stored_examples"] for c in costs),
        "n_params": n_params,
        "train_time_s": round(t_train, 2),
        "steps_per_s": loop["steps_trained"] / t_train if t_train > 0 else None,
        "pretrain": pre,
    }
    if loop["barrier"]:
        results["barrier"] = loop["barrier"]
    if has_val:
        results["Rval"] = loop["Rval"]
        results["val_acc"] = float(sum(loop["Rval"][-1]) / K)
    return results

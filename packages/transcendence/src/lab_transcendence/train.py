"""Train the chess GPT on a data folder with the core trainer, then export it as a Hugging Face folder.

Defaults are the paper's optimizer settings (AdamW 3e-4, betas 0.9/0.95, weight decay 0.1, clip 1.0, 2,000
warmup steps, cosine to 3e-5 over 4e6 steps, batch 125 x 4); the `tiny` and `small` presets replace the
fields the user left at those defaults with CPU-sized ones. bf16 autocast and torch.compile on CUDA, DDP
under torchrun (the core trainer), checkpoints in the run directory; SIGINT/SIGTERM/SIGUSR1 stop at a step
boundary with an exact checkpoint and the resume command (lab_shared.signals).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lab_shared.errors import LabError
from lab_shared.trainer import TrainerConfig
from lab_transcendence.position_config import PositionConfig


def paper_trainer_config() -> TrainerConfig:
    return TrainerConfig(
        max_steps=100_000,
        batch_size=125,
        grad_accum=4,
        lr=3e-4,
        min_lr=3e-5,
        lr_decay_steps=4_000_000,
        warmup_steps=2000,
        weight_decay=0.1,
        beta1=0.9,
        beta2=0.95,
        grad_clip=1.0,
        log_every=50,
        eval_every=1000,
        ckpt_every=1000,
    )


# Trainer fields a preset sets when the user left them at the paper's defaults.
PRESET_TRAINER: dict[str, dict] = {
    "tiny": dict(
        max_steps=30,
        batch_size=8,
        grad_accum=1,
        warmup_steps=3,
        lr=1e-3,
        log_every=5,
        eval_every=0,
        ckpt_every=0,
    ),
    "small": dict(
        max_steps=600,
        batch_size=16,
        grad_accum=1,
        warmup_steps=50,
        lr=1e-3,
        log_every=25,
        eval_every=200,
        ckpt_every=200,
    ),
    "50m": {},
    "300m": {},
}


@dataclass
class ChessTrainConfig:
    data: Path | None = None  # a folder made by `lab chess data ...` (positions folder for model=position)
    model: str = "transcript"  # transcript (the paper's GPT) | position (position_model.py)
    preset: str = "small"  # tiny | small | 50m | 300m
    block_size: int | None = None  # context (default: the preset's; blocks are block_size + 1 tokens)
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    dropout: float = 0.0
    bias: bool = False
    compile: Literal["auto", "on", "off"] = "auto"  # auto = on for CUDA
    val_fraction: float = 0.02
    eval_batches: int = 20
    position: PositionConfig = field(default_factory=PositionConfig)  # model=position only
    trainer: TrainerConfig = field(default_factory=paper_trainer_config)


def apply_preset_defaults(cfg: ChessTrainConfig) -> ChessTrainConfig:
    """Preset trainer defaults for the fields still at the paper's values."""
    if cfg.preset not in PRESET_TRAINER:
        raise LabError(f"unknown model preset {cfg.preset!r} (choose {', '.join(PRESET_TRAINER)})")
    paper = paper_trainer_config()
    changes = {
        k: v for k, v in PRESET_TRAINER[cfg.preset].items() if getattr(cfg.trainer, k) == getattr(paper, k)
    }
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, **changes))


def chess_loss(model, batch):
    """Next-token cross entropy on a (B, block_size + 1) batch of blocks."""
    _, loss = model(batch[:, :-1], batch[:, 1:])
    return loss


def build_model(cfg: ChessTrainConfig, vocab_size: int):
    from lab_transcendence.model import GPT, preset_config

    mcfg = preset_config(
        cfg.preset, vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
        n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias,
    )  # fmt: skip
    if mcfg.n_embd % mcfg.n_head:
        raise LabError(f"n_embd ({mcfg.n_embd}) must be a multiple of n_head ({mcfg.n_head})")
    return GPT(mcfg)


def train(cfg: ChessTrainConfig, run_dir=None, resume: str | Path | None = None, name: str = "chess") -> dict:
    """Train on cfg.data in a run directory (created, or given to resume); returns the results dict."""
    if cfg.model == "position":
        from lab_transcendence.position_train import train_position

        return train_position(cfg, run_dir=run_dir, resume=resume, name=name)
    if cfg.model != "transcript":
        raise LabError(f"unknown model kind {cfg.model!r} (choose transcript or position)")
    from lab_transcendence.positions import is_positions

    if cfg.data is not None and is_positions(cfg.data):
        raise LabError(f"{cfg.data} is a positions folder: train it with --model position")
    import torch

    from lab_shared.device import choose_device
    from lab_shared.rundir import RunDir
    from lab_shared.seed import seed_everything
    from lab_shared.trainer import Trainer
    from lab_transcendence.blocks import BlockDataset, cached_blocks, split_games
    from lab_transcendence.export import export_model
    from lab_transcendence.lichess import load_games
    from lab_transcendence.pretok import check_token_ids
    from lab_transcendence.tokenizer import load_tokenizer

    if cfg.data is None:
        raise LabError("no data folder given (--data DIR, made by `lab chess data synth|lichess`)")
    cfg = apply_preset_defaults(cfg)
    games, meta = load_games(cfg.data)
    if not games:
        raise LabError(f"{cfg.data} holds no games")
    tok = load_tokenizer(meta.get("tokenizer", "char"), cfg.data)  # vocab: the folder's vocab.json
    check_token_ids(cfg.data, meta, tok.vocab_size)
    seed_everything(cfg.trainer.seed)
    model = build_model(cfg, tok.vocab_size)
    block_len = model.config.block_size + 1
    train_games, val_games = split_games(games, cfg.val_fraction, seed=0)
    key = f"{meta.get('settings_key', 'x')}-{cfg.val_fraction:g}"  # a re-made data set never reuses stale blocks
    train_blocks = cached_blocks(cfg.data, f"train-{key}", train_games, block_len)
    val_blocks = cached_blocks(cfg.data, f"val-{key}", val_games, block_len) if val_games else None
    device = choose_device(cfg.trainer.device)
    tcfg = cfg.trainer
    if cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda"):
        tcfg = dataclasses.replace(tcfg, compile=True)
    if run_dir is None:
        run_dir = RunDir.create("chess-train", name=name, config=cfg, inputs=[cfg.data])

    def evaluate(trainer) -> dict[str, float]:
        if val_blocks is None or len(val_blocks) == 0:
            return {}
        losses = []
        bs = trainer.config.batch_size
        for i in range(0, min(len(val_blocks), bs * cfg.eval_batches), bs):
            batch = torch.from_numpy(val_blocks[i : i + bs].astype("int64")).to(trainer.device)
            with trainer._autocast():
                losses.append(float(chess_loss(trainer.model, batch)))
        return {"val_loss": sum(losses) / len(losses)}

    data = BlockDataset(train_blocks)
    trainer = Trainer(model, chess_loss, data, tcfg, eval_fn=evaluate, run_dir=run_dir, log_prefix="")
    t0 = time.perf_counter()
    fit = trainer.fit(resume=resume)  # a stop signal: exact checkpoint, then signals.Preempted
    elapsed = time.perf_counter() - t0
    tc = trainer.config  # grad_accum as resolved from trainer.global_batch and the process count
    tokens_per_step = tc.batch_size * tc.grad_accum * model.config.block_size * trainer.world_size
    results = {
        "step": fit["step"],
        "train_loss": fit.get("loss"),
        "val_loss": fit.get("val_loss"),
        "params": model.num_params(),
        "preset": cfg.preset,
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "embedding_params": model.config.vocab_size * model.config.n_embd,
        "train_blocks": len(train_blocks),
        "val_blocks": 0 if val_blocks is None else len(val_blocks),
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": fit["steps_per_s"] * tokens_per_step,
        "time_s": round(elapsed, 2),
        "device": str(device),
        "max_rating": meta.get("max_rating"),
    }
    if trainer.is_main:
        data_meta = {k: v for k, v in meta.items() if k not in ("shards", "settings_key")}
        export_model(trainer.model, run_dir.path / "model", tok, data_meta)
        _plot_losses(run_dir)
        run_dir.write_results(results)
    return {**results, "run_dir": str(run_dir.path)}


def _plot_losses(run_dir, model: str = "chess GPT", unit: str = "nats/token") -> None:
    from lab_shared.metrics import read_metrics
    from lab_shared.report import line_plot

    rows = read_metrics(run_dir.path / "metrics.jsonl")
    series = {}
    for key in ("loss", "val_loss"):
        pts = [(r["step"], r[key]) for r in rows if key in r and r.get("step") is not None]
        if pts:
            series[key] = ([p[0] for p in pts], [p[1] for p in pts])
    if series:
        line_plot(
            run_dir.plots / "loss.png",
            series,
            "step",
            f"cross entropy ({unit})",
            title=f"{model} training",
        )

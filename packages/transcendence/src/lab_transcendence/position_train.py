"""Train the position policy (position_model.py) on a positions folder with the core trainer, export it.

The folder's held-out games (game % val_every == 0) give the validation loss and top-1 agreement, logged
every `eval_every` steps: the learning curve in metrics.jsonl. The export, RUN/model/, holds
`model.safetensors`, `config.json` (model_type `lab_chess_position`, the architecture, the encoding and
move space) and `lab_chess.json` (the corpus's metadata: experts and their ratings, as for transcript
models), so `lab chess eval | transcend | analyze | uci` can load it beside GPT-2 folders.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lab_shared.errors import LabError
from lab_shared.io import atomic_write_json, load_tensors, read_json, save_tensors
from lab_transcendence.position_model import MODEL_TYPE, PositionConfig, PositionPolicy, position_loss

META_FILE = "lab_chess.json"
# Trainer fields set for the position model when the user left them at the paper's (GPT) defaults.
POSITION_TRAINER = dict(
    max_steps=2000,
    batch_size=256,
    grad_accum=1,
    warmup_steps=100,
    lr=2e-3,
    min_lr=1e-4,
    lr_decay_steps=0,
    weight_decay=0.01,
    log_every=50,
    eval_every=250,
    ckpt_every=500,
)


class PositionDataset(Dataset):
    """(x, y) pairs; a batch is {"x": (B, 70) uint8, "y": (B,) int64}."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        if len(y) == 0:
            raise LabError("the positions folder holds no training positions")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.from_numpy(self.x[i]), "y": torch.tensor(int(self.y[i]))}

    def __getitems__(self, indices: list[int]) -> dict:
        idx = np.asarray(indices)
        return {"x": torch.from_numpy(self.x[idx]), "y": torch.from_numpy(self.y[idx].astype(np.int64))}

    @staticmethod
    def collate_fn(batch):
        if isinstance(batch, dict):
            return batch
        return {"x": torch.stack([b["x"] for b in batch]), "y": torch.stack([b["y"] for b in batch])}


def split(arrays: dict[str, np.ndarray], val_every: int) -> tuple[dict, dict]:
    val = arrays["game"] % val_every == 0
    return ({k: v[~val] for k, v in arrays.items()}, {k: v[val] for k, v in arrays.items()})


def export_position_model(model: PositionPolicy, out_dir: str | Path, data_meta: dict | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_tensors(state, out_dir / "model.safetensors", metadata={"format": "pt"})
    cfg = {
        "model_type": MODEL_TYPE,
        **model.config.to_dict(),
        "encoding": "lab_transcendence.board (70 values, side to move's view)",
        "move_space_layout": "lab_transcendence.moves (4096 from-to + 66 under-promotions)",
    }
    atomic_write_json(out_dir / "config.json", cfg)
    data_meta = data_meta or {}
    meta = {
        "kind": "position",
        "max_rating": data_meta.get("max_rating"),
        "expert_ratings": data_meta.get("expert_ratings"),
        "data": data_meta,
    }
    atomic_write_json(out_dir / META_FILE, meta)
    return out_dir


def load_position_model(folder: str | Path, device="cpu") -> tuple[PositionPolicy, dict]:
    folder = Path(folder)
    cfg = read_json(folder / "config.json")
    if cfg.get("model_type") != MODEL_TYPE:
        raise LabError(f"{folder}: not a position model (model_type={cfg.get('model_type')!r})")
    fields = {f.name for f in dataclasses.fields(PositionConfig)}
    try:
        pcfg = PositionConfig(**{k: v for k, v in cfg.items() if k in fields})
        model = PositionPolicy(pcfg)
        model.load_state_dict(load_tensors(folder / "model.safetensors"))
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise LabError(f"{folder}: cannot load the position model: {str(e).splitlines()[0]}") from None
    meta = read_json(folder / META_FILE) if (folder / META_FILE).is_file() else {}
    meta.setdefault("kind", "position")
    return model.to(device).eval(), meta


def train_position(cfg, run_dir=None, resume=None, name: str = "position") -> dict:
    """Train on cfg.data (a positions folder); returns the results dict (see train.train)."""
    from lab_shared.device import choose_device
    from lab_shared.rundir import RunDir
    from lab_shared.seed import seed_everything
    from lab_shared.trainer import Trainer
    from lab_transcendence.positions import load_positions
    from lab_transcendence.train import paper_trainer_config

    if cfg.data is None:
        raise LabError("no positions folder given (--data DIR, made by `lab chess data positions`)")
    arrays, meta = load_positions(cfg.data)
    tr, va = split(arrays, int(meta.get("val_every", 50)))
    paper = paper_trainer_config()
    changes = {k: v for k, v in POSITION_TRAINER.items() if getattr(cfg.trainer, k) == getattr(paper, k)}
    tcfg = dataclasses.replace(cfg.trainer, **changes)
    seed_everything(tcfg.seed)
    model = PositionPolicy(cfg.position)
    device = choose_device(tcfg.device)
    if run_dir is None:
        run_dir = RunDir.create("chess-train", name=name, config=dataclasses.replace(cfg, trainer=tcfg))
    vx = torch.from_numpy(np.ascontiguousarray(va["x"][: cfg.eval_batches * 256]))
    vy = torch.from_numpy(va["y"][: cfg.eval_batches * 256].astype(np.int64))

    @torch.no_grad()
    def evaluate(trainer) -> dict[str, float]:
        if len(vy) == 0:
            return {}
        m = trainer.model
        was = m.training
        m.eval()
        losses, hits = [], 0
        for i in range(0, len(vy), 512):
            logits = m(vx[i : i + 512].to(trainer.device))
            yy = vy[i : i + 512].to(trainer.device)
            losses.append(float(torch.nn.functional.cross_entropy(logits, yy, reduction="sum")))
            hits += int((logits.argmax(1) == yy).sum())
        m.train(was)
        return {"val_loss": sum(losses) / len(vy), "val_top1": hits / len(vy)}

    data = PositionDataset(np.ascontiguousarray(tr["x"]), np.ascontiguousarray(tr["y"]))
    trainer = Trainer(model, position_loss, data, tcfg, eval_fn=evaluate, run_dir=run_dir, log_prefix="")
    t0 = time.perf_counter()
    fit = trainer.fit(resume=resume)
    elapsed = time.perf_counter() - t0
    per_step = tcfg.batch_size * tcfg.grad_accum * trainer.world_size
    results = {
        "model": "position",
        "arch": cfg.position.arch,
        "step": fit["step"],
        "train_loss": fit.get("loss"),
        "val_loss": fit.get("val_loss"),
        "val_top1": fit.get("val_top1"),
        "params": model.num_params(),
        "train_positions": int(len(data)),
        "val_positions": int(len(va["y"])),
        "positions_per_s": fit["steps_per_s"] * per_step,
        "tokens_per_s": fit["steps_per_s"] * per_step,  # one "token" = one position (the CLI prints it)
        "epochs": fit["step"] * per_step / max(1, len(data)),
        "time_s": round(elapsed, 2),
        "device": str(device),
        "max_rating": meta.get("max_rating"),
    }
    if trainer.is_main:
        data_meta = {k: v for k, v in meta.items() if k not in ("shards", "key")}
        data_meta["positions_dir"] = str(Path(cfg.data).resolve())
        export_position_model(trainer.model, run_dir.path / "model", data_meta)
        from lab_transcendence.train import _plot_losses

        _plot_losses(run_dir, "chess position policy", "nats/move")
        run_dir.write_results(results)
    return {**results, "run_dir": str(run_dir.path)}

"""`lab demo` piece: noisy synthetic experts -> a position policy -> the pool verdict and the per-position
measure (the effect the paper explains), small enough for ~5 minutes on 2 CPU cores.

4 noisy experts (presets.py), 600 corpus games, a small residual CNN trained ~400 steps, then the pool
design of `lab chess transcend` with a handful of games and the per-position measure on 150 held-out
positions: the expected Stockfish score of the model's T -> 0 move beside each expert's and the experts'
vote. The games are too few for a verdict; docs/chess-eval.md has the full CPU run.
"""

from __future__ import annotations

from pathlib import Path


def run_demo(out_dir: Path) -> list[Path]:
    """Run the demo under `out_dir` and return its run folders (torch threads restored after)."""
    import torch

    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on a shared CPU: one thread avoids oversubscription stalls
    try:
        return _run(out_dir)
    finally:
        torch.set_num_threads(threads)


def _run(out_dir: Path, quick: bool = False) -> list[Path]:
    """The demo; `quick` shrinks every size (tests). Returns the train and eval run folders."""
    from lab_shared.rundir import RunDir
    from lab_shared.tools import find_stockfish
    from lab_transcendence.position_config import PositionConfig
    from lab_transcendence.positions import convert
    from lab_transcendence.synth import SynthSettings, generate_corpus
    from lab_transcendence.train import ChessTrainConfig, train
    from lab_transcendence.transcend import EvalConfig, run_experiment

    stockfish = find_stockfish()
    corpus = out_dir / "corpus"
    q = quick
    settings = SynthSettings(players=4, games=24 if q else 600, seed=0, rating_games=0, vote_games=1 if q else 4,
                             preset="noisy")  # fmt: skip
    generate_corpus(corpus, settings, stockfish, workers=2, tokenizer="char", show_progress=False)
    convert(corpus, out_dir / "positions", workers=2, show_progress=False)

    cfg = ChessTrainConfig(
        data=out_dir / "positions", model="position", position=PositionConfig(width=32, layers=3)
    )
    t = cfg.trainer
    t.max_steps, t.batch_size, t.warmup_steps, t.lr, t.eval_every, t.progress = 400, 128, 40, 2e-3, 200, False
    if q:
        t.max_steps, t.batch_size, t.warmup_steps, t.eval_every = 3, 16, 1, 0
    train_run = RunDir.create("train", "position", cfg, root=out_dir, inputs=[cfg.data])
    train(cfg, run_dir=train_run)

    ecfg = EvalConfig(
        models=[str(train_run.path / "model")], temperatures=[0.001, 1.0], design="pool", selection_games=1 if q else 2,
        confirm_games=1 if q else 4, h2h_games=2 if q else 10, positions=8 if q else 150, position_depth=2 if q else 6,
        max_moves=12 if q else 80, concurrency=64,
        engines=2, device="cpu", bootstrap=300,
    )  # fmt: skip
    eval_run = RunDir.create("transcend", "pool", ecfg, root=out_dir)
    run_experiment(ecfg, eval_run, show_progress=False)
    return [train_run.path, eval_run.path]

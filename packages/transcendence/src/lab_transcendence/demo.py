"""`lab demo` piece: noisy synthetic experts -> a position policy -> the pool verdict and the per-position
measure (the effect the paper explains), small enough for ~5 minutes on 2 CPU cores.

4 noisy experts (presets.py), 600 corpus games, a small residual CNN trained ~400 steps, then the pool
design of `lab chess transcend` with a handful of games and the per-position measure on 150 held-out
positions: the expected Stockfish score of the model's T -> 0 move beside each expert's and the experts'
vote. The games are too few for a verdict; docs/chess-eval.md has the full CPU run.
"""

from __future__ import annotations

from pathlib import Path


def run_demo(out_dir: Path):
    """Run the demo under `out_dir` and return its results-page section (torch threads restored after)."""
    import torch

    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on a shared CPU: one thread avoids oversubscription stalls
    try:
        return _run(out_dir)
    finally:
        torch.set_num_threads(threads)


def _run(out_dir: Path, quick: bool = False):
    """The demo; `quick` shrinks every size (tests)."""
    from lab_shared.report import Section
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
    train_run = RunDir(out_dir / "train")
    train_run.write_config(cfg)
    res = train(cfg, run_dir=train_run)

    ecfg = EvalConfig(
        models=[str(train_run.path / "model")], temperatures=[0.001, 1.0], design="pool", selection_games=1 if q else 2,
        confirm_games=1 if q else 4, h2h_games=2 if q else 10, positions=8 if q else 150, position_depth=2 if q else 6,
        max_moves=12 if q else 80, concurrency=64,
        engines=2, device="cpu", bootstrap=300,
    )  # fmt: skip
    eval_run = RunDir(out_dir / "eval")
    eval_run.write_config(ecfg)
    results = run_experiment(ecfg, eval_run, show_progress=False)

    text = (
        f"Corpus: {settings.games} games between 4 noisy experts (random-move rates 0.3-0.6, depths 1-3, one "
        f"blind spot each). Model: residual CNN 32x3 trained {res['step']} steps on board positions "
        f"(val top-1 {res.get('val_top1') or float('nan'):.2f}). Pool of the model (T = 0.001 and 1), the "
        "experts and a fixed anchor; few games, so read the intervals, not the point estimates.\n"
        + "\n".join(results["summary"])
    )
    pp = results.get("per_position") or {"players": {}}
    table = [
        {"move of": n, "expected score": r["mean"], "95% CI": f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"}
        for n, r in pp["players"].items()
    ]
    images = [Path(results["figure1"])]
    loss_png = train_run.plots / "loss.png"
    if loss_png.exists():
        images.append(loss_png)
    return Section(
        title="Transcendence in chess (position policy demo)",
        text=text,
        tables=[("Expected Stockfish score per held-out position", table),
                ("Confirmation pool", [{k: v for k, v in r.items() if k != "fixed"} for r in results["confirmation"]])],
        images=images,
    )  # fmt: skip

"""`lab demo` piece: synthetic experts -> a small GPT -> games against Stockfish -> ratings and Figure 1.

Everything is tiny so it runs in a few minutes on 2 CPU cores: 3 experts, 200 corpus games, a `tiny`
model trained for 300 steps, 4 games per setting against Stockfish level 1 (depth 2). The numbers show
the pipeline working, not transcendence (see docs/chess-eval.md for the real table).
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


def _run(out_dir: Path):
    from lab_shared.report import Section
    from lab_shared.rundir import RunDir
    from lab_shared.tools import find_stockfish
    from lab_transcendence.synth import SynthSettings, generate_corpus
    from lab_transcendence.train import ChessTrainConfig, train
    from lab_transcendence.transcend import EvalConfig, run_experiment

    stockfish = find_stockfish()
    corpus = out_dir / "corpus"
    settings = SynthSettings(players=3, games=200, seed=0, depth=2, rating_games=4, anchors=[1, 3])
    meta = generate_corpus(corpus, settings, stockfish, workers=2, tokenizer="char")

    cfg = ChessTrainConfig(data=corpus, preset="tiny")
    cfg.trainer.max_steps = 300
    cfg.trainer.batch_size = 16
    cfg.trainer.warmup_steps = 20
    cfg.trainer.lr = 2e-3
    cfg.trainer.log_every = 50
    cfg.trainer.progress = False
    train_run = RunDir(out_dir / "train")
    train_run.write_config(cfg)
    res = train(cfg, run_dir=train_run)
    model_dir = train_run.path / "model"

    ecfg = EvalConfig(
        models=[str(model_dir)],
        temperatures=[0.001, 0.3, 1.0],
        policies=["masked", "paper"],
        levels=[1],
        games=4,
        limit="depth:level+1",
        max_moves=60,
        concurrency=32,
        engines=2,
        expert_games=4,
        device="cpu",
    )
    eval_run = RunDir(out_dir / "eval")
    eval_run.write_config(ecfg)
    results = run_experiment(ecfg, eval_run, show_progress=False)

    experts = ", ".join(f"{e['name']} {e.get('rating')}" for e in meta.get("experts", []))
    text = (
        f"Corpus: {settings.games} games between {settings.players} synthetic experts (measured ratings: "
        f"{experts}). Model: `tiny` GPT trained {res['step']} steps, train loss {res['train_loss']:.3f}. "
        f"Each (temperature, policy) played {ecfg.games} games against Stockfish level 1 at depth 2; "
        "ratings are one-period Glicko-2 against the paper's anchor (1554), so deviations are large.\n"
        + "\n".join(results["summary"])
    )
    images = [Path(results["figure1"])]
    loss_png = train_run.plots / "loss.png"
    if loss_png.exists():
        images.append(loss_png)
    return Section(
        title="Transcendence in chess (tiny demo)",
        text=text,
        tables=[("Ratings against Stockfish level 1", results["table"])],
        images=images,
    )

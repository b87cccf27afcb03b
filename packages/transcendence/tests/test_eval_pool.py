"""The pool design of `lab chess transcend` end to end on a tiny position model and the real Stockfish:
noisy-preset corpus -> positions -> position model -> selection + confirmation sets -> verdict; and the
resume key (a hash of the model's weights)."""

import json
import random

import pytest
from typer.testing import CliRunner

from lab_transcendence.cli import app
from lab_transcendence.rating import diff_ci, pool_ml

runner = CliRunner()


def test_pool_ml_recovers_ratings_with_intervals():
    rng = random.Random(0)
    true = {"anchor": 1500, "a": 1600, "b": 1400, "c": 1800}
    games = []
    for _ in range(3000):
        x, y = rng.sample(list(true), 2)
        p = 1 / (1 + 10 ** ((true[y] - true[x]) / 400))
        games.append((x, y, 1.0 if rng.random() < p else 0.0))
    fit = pool_ml(games, {"anchor": 1500}, bootstrap=200)
    for n, r in true.items():
        lo, hi = fit["ci95"][n]
        assert lo - 15 <= r <= hi + 15 and abs(fit["ratings"][n] - r) < 60
    d, (lo, hi) = diff_ci(fit, "c", "a")
    assert lo < d < hi and lo > 100  # 200 points apart: clearly separated
    assert fit["ci95"]["anchor"] == [1500.0, 1500.0]


@pytest.mark.stockfish
@pytest.mark.slow
def test_transcend_pool_verdict_and_resume_by_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    corpus, pos = tmp_path / "corpus", tmp_path / "pos"
    r = runner.invoke(app, ["data", "synth", "--preset", "noisy", "--players", "3", "--games", "12",
                            "--rating-games", "0", "--vote-games", "1", "-j", "1", "--out", str(corpus)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "elo_vs_vote" in r.output  # the vote-vs-experts round robin is printed
    r = runner.invoke(
        app, ["data", "positions", str(corpus), "--out", str(pos), "-j", "1", "--val-every", "3"]
    )
    assert r.exit_code == 0, r.output
    models = []
    for seed in (0, 1):
        r = runner.invoke(app, ["train", "--model", "position", "--data", str(pos), "--max-steps", "2",
                                "--batch-size", "16", "--seed", str(seed), "--name", f"m{seed}",
                                "--set", "position.width=8", "--set", "position.layers=1",
                                "--set", "trainer.progress=false", "--device", "cpu"])  # fmt: skip
        assert r.exit_code == 0, r.output
        models.append(next((tmp_path / "runs" / "chess-train").glob(f"m{seed}-*")) / "model")
    args = ["transcend", "--model", str(models[0]), "--design", "pool", "--temperatures", "0.001,1",
            "--selection-games", "1", "--confirm-games", "2", "--h2h-games", "3", "--positions", "8",
            "--position-depth", "2", "--max-moves", "15", "--concurrency", "16", "--device", "cpu"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    run = next((tmp_path / "runs" / "chess-transcend").iterdir())
    res = json.loads((run / "results.json").read_text())
    v = res["verdict"]
    assert set(v) >= {"transcends", "setting", "best_expert", "confirmation_games", "model"}
    assert isinstance(v["transcends"], bool) and v["model_kind"] == "position"
    assert v["best_expert"].startswith("expert") and v["head_to_head"]["games"] == 3
    for p in res["players"].values():
        lo, hi = p["ml_ci95"]
        assert lo <= p["ml_elo"] <= hi
    anchor = res["anchor"]["name"]
    assert res["players"][anchor]["ml_elo"] == 1500.0
    assert res["games_confirmation"] > 0 and res["games_selection"] > 0
    pp = res["per_position"]
    assert (
        pp["positions"] == 8
        and "vote" in pp["players"]
        and all(0 <= x["mean"] <= 1 for x in pp["players"].values())
    )
    assert "transcends =" in r.output
    # resume with another model: its games are new games (keyed by the other weights' hash), not replays
    from lab_transcendence.loading import weights_hash

    h0, h1 = weights_hash(models[0]), weights_hash(models[1])
    assert h0 != h1
    n0 = len((run / "games.jsonl").read_text().splitlines())
    r = runner.invoke(app, ["transcend", "--resume", str(run), "--set", f"models={models[1]}"])
    assert r.exit_code == 0, r.output
    ids = [json.loads(x)["game_id"] for x in (run / "games.jsonl").read_text().splitlines()]
    assert len(ids) > n0 and any(h1 in i for i in ids[n0:]) and not any(h0 in i for i in ids[n0:])
    assert json.loads((run / "results.json").read_text())["verdict"]["weights_hash"] == h1


@pytest.mark.stockfish
@pytest.mark.slow
def test_demo_quick(tmp_path):
    from lab_shared.runs import load_run, resolve_run
    from lab_transcendence import report
    from lab_transcendence.demo import _run

    paths = _run(tmp_path, quick=True)  # the demo's run folders: train, transcend (pool design)
    runs = [load_run(resolve_run(str(p))) for p in paths]
    assert all(report.owns(r) and r.status == "finished" for r in runs)
    sec = report.section(runs, tmp_path / "figures")
    assert sec.verdicts[0].claim.startswith("Does the model at low temperature beat every expert")
    assert sec.verdicts[0].answer.split()[0].rstrip(",") in ("yes", "no")
    assert (tmp_path / "figures" / f"figure1-{paths[1].name}.png").stat().st_size > 10_000
    rows = dict(sec.tables)[next(c for c, _ in sec.tables if c.startswith("Expected Stockfish score"))]
    assert {r["move of"] for r in rows} >= {"vote", "expert0"}

"""`lab chess transcend | eval | calibrate | analyze` end to end on tiny models and the real Stockfish."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab_shared.errors import LabError
from lab_transcendence.cli import app
from lab_transcendence.export import export_model
from lab_transcendence.synth import Expert

sys.path.insert(0, str(Path(__file__).parent))  # eval_helpers (pytest runs with importlib mode)
from eval_helpers import memorized_model  # noqa: E402

runner = CliRunner()
pytestmark = pytest.mark.stockfish


def _lab() -> list[str]:
    lab = Path(sys.executable).parent / "lab"
    return [str(lab)] if lab.exists() else [sys.executable, "-c", "from lab_shared.cli import main; main()"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    experts = [
        Expert("expert0", random_rate=0.2, blind_spot="N", depth=1).to_dict(),
        Expert("expert1", random_rate=0.3, blind_spot="B", depth=1).to_dict(),
    ]
    meta = {"max_rating": 1100, "experts": experts}
    return export_model(memorized_model(), tmp_path_factory.mktemp("cli") / "model", "char", meta)


def _only_run(root: Path) -> Path:
    runs = [p for p in root.rglob("results.json")]
    assert len(runs) == 1
    return runs[0].parent


@pytest.mark.slow
def test_transcend_table_figure_and_resume(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    args = [
        "transcend",
        "--model",
        str(model_dir),
        "--temperatures",
        "0.001,1",
        "--games",
        "2",
        "--levels",
        "1",
        "--limit",
        "depth:1",
        "--max-moves",
        "12",
        "--concurrency",
        "8",
        "--expert-games",
        "2",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    run = _only_run(tmp_path / "runs")
    res = json.loads((run / "results.json").read_text())
    models = [t for t in res["table"] if t["policy"] in ("paper", "masked")]
    assert len(models) == 4 and all(t["games"] == 2 for t in models)
    experts = [t for t in res["table"] if t["policy"] == "expert"]
    assert {t["model"] for t in experts} == {"expert0", "expert1"}
    masked = [t for t in models if t["policy"] == "masked"]
    assert all(t["legal_rate"] == 1.0 and t["forfeits"] == 0 for t in masked)
    assert (run / "plots" / "figure1_rating_vs_temperature.png").stat().st_size > 1000
    assert (run / "transcendence.md").exists() and (run / "games.pgn").read_text().count("[Event") == 12
    assert len(res["verdicts"]) == 2 and "transcends" in res["summary"][0]
    # resume: nothing left to play, same record
    n = len((run / "games.jsonl").read_text().splitlines())
    r = runner.invoke(app, ["transcend", "--resume", str(run)])
    assert r.exit_code == 0, r.output
    assert len((run / "games.jsonl").read_text().splitlines()) == n


def test_bad_inputs_one_line(tmp_path):
    (tmp_path / "junk").mkdir()
    cases = [
        (["chess", "eval", "--model", str(tmp_path / "junk")], "no exported chess model"),
        (["chess", "eval", "--model", str(tmp_path / "missing")], "not found"),
        (
            ["chess", "transcend", "--model", str(tmp_path / "junk"), "--temperatures", "0,1"],
            "temperature must be > 0",
        ),
    ]
    for args, msg in cases:
        r = subprocess.run(
            [*_lab(), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={"LAB_RUNS": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        )
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(err) == 1 and msg in err[0], (args, r.stderr)


def test_missing_stockfish_is_one_clear_error(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_STOCKFISH", str(tmp_path / "no-stockfish"))
    r = runner.invoke(app, ["eval", "--model", str(model_dir), "--games", "1", "--levels", "1"])
    assert isinstance(r.exception, LabError) and "apt-get install -y stockfish" in str(r.exception)


def test_calibrate_round_robin(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "anchors.json"
    r = runner.invoke(
        app,
        [
            "calibrate",
            "--levels",
            "0,5",
            "--games",
            "4",
            "--limit",
            "depth:1",
            "--pin",
            "0=1000",
            "--max-moves",
            "30",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    anchors = json.loads(out.read_text())["anchors"]
    assert anchors["0"] == {"rating": 1000.0, "rd": 0.0} and anchors["5"]["rd"] > 0
    from lab_transcendence.rating import load_anchors

    assert load_anchors(out)[0] == (1000.0, 0.0)


def test_analyze_diversity_and_rewards(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    from lab_transcendence.analyze import diversity

    # a corpus where one opening is always played and another where the reply varies
    same = "\n".join(
        '[Event "x"]\n[Result "*"]\n\n1. e4 {[%clk 0:01:00]} e5 2. Nf3 Nc6 *\n' for _ in range(120)
    )
    replies = ["e5", "c5", "e6", "c6", "d5", "Nf6"]
    varied = "\n".join(f'[Event "x"]\n[Result "*"]\n\n1. e4 {replies[i % 6]} *\n' for i in range(120))
    (tmp_path / "same.pgn").write_text(same)
    (tmp_path / "varied.pgn").write_text(varied + '\n[Event "bad"]\n\n1. e4 Ke5 *\n')
    d_same, d_var = diversity(tmp_path / "same.pgn"), diversity(tmp_path / "varied.pgn")
    assert d_same["positions"] == 4 and d_same["mean_entropy"] == 0.0
    import math

    assert d_var["positions"] == 2 and d_var["games_with_bad_moves"] == 1
    assert sorted(d_var["entropies"]) == pytest.approx([0.0, math.log(6) / math.log(20)])  # 6 of 20 replies
    r = runner.invoke(app, ["analyze", "diversity", str(tmp_path / "same.pgn"), str(tmp_path / "varied.pgn")])
    assert r.exit_code == 0, r.output
    # rewards on recorded games of the model
    r = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(model_dir),
            "--games",
            "2",
            "--levels",
            "1",
            "--limit",
            "depth:1",
            "--max-moves",
            "8",
            "--policy",
            "masked",
            "--name",
            "ev",
        ],
    )
    assert r.exit_code == 0, r.output
    ev = next((tmp_path / "runs" / "chess-eval").iterdir())
    r = runner.invoke(
        app,
        [
            "analyze",
            "rewards",
            "--run",
            str(ev),
            "--model",
            str(model_dir),
            "--depth",
            "2",
            "--max-positions",
            "6",
            "--temperatures",
            "0.001,1",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(next((tmp_path / "runs" / "chess-analyze").glob("rewards-*/results.json")).read_text())
    assert res["positions"] == 6 and set(map(float, res["mean_reward"])) == {0.001, 1.0}
    assert 0.0 <= res["best_move_reward"] <= 1.0

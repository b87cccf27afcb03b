"""`lab chess transcend | eval | calibrate --backend ray`: games in chunks on a local Ray cluster (a Stockfish
per worker, the model loaded per worker or served by a batching actor) give the same games and ratings as
the local backend; a resumed run never replays a finished game; a killed worker's chunk is retried; Ray
missing, an unreachable cluster or a worker without Stockfish is one line before anything is written."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from lab_shared.backend import Backend
from lab_shared.errors import LabError
from lab_transcendence.arena import EnginePlayer, GameLog, GameSpec, game_seed, read_records
from lab_transcendence.arena_tasks import chunk_size, play
from lab_transcendence.cli import app
from lab_transcendence.engines import EngineSettings, open_pool
from lab_transcendence.export import export_model
from lab_transcendence.synth import Expert

sys.path.insert(0, str(Path(__file__).parent))  # eval_helpers (pytest runs with importlib mode)
from eval_helpers import memorized_model  # noqa: E402

runner = CliRunner()
pytestmark = pytest.mark.stockfish


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    experts = [
        Expert("expert0", random_rate=0.2, blind_spot="N", depth=1).to_dict(),
        Expert("expert1", random_rate=0.3, blind_spot="B", depth=1).to_dict(),
    ]
    return export_model(
        memorized_model(), tmp_path_factory.mktemp("ray") / "model", "char", {"experts": experts}
    )


def _games(run: Path) -> list[dict]:
    """The run's game records without the date (a run may cross midnight)."""
    return [{k: v for k, v in r.items() if k != "date"} for r in read_records(run / "games.jsonl")]


def _transcend(tmp_path: Path, model_dir: Path, name: str, *extra: str) -> Path:
    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps({"20": 2000}))  # full strength at a fixed depth: deterministic moves
    args = ["transcend", "--model", str(model_dir), "--temperatures", "0.001", "--games", "2", "--levels",
            "20", "--anchors", str(anchors), "--limit", "depth:1", "--max-moves", "8", "--concurrency", "4",
            "--expert-games", "1", "--name", name, *extra]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return next((tmp_path / "runs" / "chess-transcend").glob(f"{name}-*"))


def _sorted(games: list[dict]) -> list[dict]:
    return sorted(games, key=lambda g: g["game_id"])


def test_transcend_on_ray_matches_local(ray_local, model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    local = _transcend(tmp_path, model_dir, "local")
    worker = _transcend(tmp_path, model_dir, "worker", "--backend", "ray", "--serve", "worker")
    games = _sorted(_games(local))
    assert len(games) == 6 and all(g["result"] != "*" for g in games)
    assert _sorted(_games(worker)) == games
    res = [json.loads((run / "results.json").read_text()) for run in (local, worker)]
    assert res[0]["table"] == res[1]["table"]
    assert (local / "summary.md").read_text() == (worker / "summary.md").read_text()
    # resume on Ray: nothing left to play, nothing appended
    n = len((worker / "games.jsonl").read_text().splitlines())
    r = runner.invoke(app, ["transcend", "--resume", str(worker), "--backend", "ray"])
    assert r.exit_code == 0, r.output
    assert len((worker / "games.jsonl").read_text().splitlines()) == n


def _engine_specs(n: int) -> tuple[list[GameSpec], dict]:
    a, b = EngineSettings(depth=1), EngineSettings(depth=2)
    players = {"d1": EnginePlayer(None, a, name="d1"), "d2": EnginePlayer(None, b, name="d2")}
    specs = []
    for g in range(n):
        gid = f"d1|d2|{g}"
        w, bl = ("d1", "d2") if g % 2 == 0 else ("d2", "d1")
        specs.append(GameSpec(gid, w, bl, round=g + 1, seed=game_seed(0, gid)))
    return specs, players


def test_resume_never_replays_and_a_killed_worker_is_retried(ray_local, tmp_path):
    specs, players = _engine_specs(8)
    with open_pool(size=1) as pool:
        local_players = {k: EnginePlayer(pool, p.settings, name=k) for k, p in players.items()}
        want = play(specs, local_players, GameLog(tmp_path / "local.jsonl"), max_moves=30)
    # a run that stopped after 3 games: those stay as recorded, the other 5 are played on Ray
    log_path = tmp_path / "games.jsonl"
    kept = [dict(r, date="kept") for r in want[:3]]
    log_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    killed = []

    def kill_a_worker() -> None:
        """Once the first new game is in (the Stockfish check is over, chunks are running), SIGKILL a Ray
        worker that holds an engine pool, i.e. one that plays chunks (the parent of a Stockfish)."""
        me = psutil.Process()
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            if len(log_path.read_text().splitlines()) > len(kept):
                for p in psutil.process_iter(["name", "ppid"]):
                    if "stockfish" in (p.info["name"] or "") and p.info["ppid"] not in (me.pid, 1):
                        try:
                            parent = psutil.Process(p.info["ppid"])
                            if "ray" in " ".join(parent.cmdline()).lower():
                                parent.kill()
                                killed.append(parent.pid)
                                break
                        except psutil.Error:
                            continue
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    got = play(specs, players, GameLog(log_path), Backend("ray"), max_moves=30, concurrency=1)
    killer.join()
    assert killed, "no Ray worker was running a chunk to kill"
    strip = lambda recs: [{k: v for k, v in r.items() if k != "date"} for r in recs]  # noqa: E731
    assert strip(got) == strip(want)  # every game, in spec order, the killed chunk played again
    assert [r["date"] for r in got[:3]] == ["kept"] * 3  # recorded games not replayed
    lines = [json.loads(x) for x in log_path.read_text().splitlines()]
    assert len(lines) == 8 and sorted(r["game_id"] for r in lines) == sorted(s.game_id for s in specs)
    assert chunk_size(100, 2, 32) == 13 and chunk_size(3, 8, 32) == 1 and chunk_size(1000, 1, 16) == 16


def test_eval_with_a_served_model_matches_local_and_calibrate_runs(
    ray_local, model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps({"20": 2000}))
    base = ["eval", "--model", str(model_dir), "--games", "4", "--levels", "20", "--anchors", str(anchors),
            "--limit", "depth:1", "--max-moves", "8", "--temperature", "1"]  # fmt: skip
    for name, extra in (("l", []), ("r", ["--backend", "ray", "--serve", "actor"])):
        r = runner.invoke(app, [*base, "--name", name, *extra])
        assert r.exit_code == 0, r.output
    runs = {n: next((tmp_path / "runs" / "chess-eval").glob(f"{n}-*")) for n in "lr"}
    assert _sorted(_games(runs["l"])) == _sorted(_games(runs["r"])) and len(_games(runs["l"])) == 4
    args = ["calibrate", "--levels", "0,5", "--games", "2", "--limit", "depth:1", "--pin", "0=1000",
            "--max-moves", "10", "--backend", "ray"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    run = next((tmp_path / "runs" / "chess-calibrate").iterdir())
    assert len(read_records(run / "games.jsonl")) == 2 and (run / "anchors.json").exists()


def test_bad_backend_inputs_are_one_line_before_any_work(ray_local, model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    base = ["transcend", "--model", str(model_dir), "--games", "1", "--levels", "1", "--backend", "ray"]
    r = runner.invoke(app, [*base, "--stockfish", str(tmp_path / "no-sf")])
    assert isinstance(r.exception, LabError) and len(str(r.exception).splitlines()) == 1
    assert "Stockfish not found" in str(r.exception) and not (tmp_path / "runs").exists()
    r = runner.invoke(app, [*base, "--serve", "gpu"])
    assert r.exception is not None and "--serve" in r.output + str(r.exception)  # a usage error or LabError
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra installed
    r = runner.invoke(app, ["calibrate", "--levels", "1,5", "--backend", "ray"])
    assert isinstance(r.exception, LabError) and "pip install 'lab-shared[ray]'" in str(r.exception)
    assert not (tmp_path / "runs").exists()


def test_unreachable_address_is_one_line(model_dir, tmp_path):
    cmd = [sys.executable, "-m", "lab_shared.cli", "chess", "eval", "--model", str(model_dir), "--games", "1",
           "--levels", "1", "--backend", "ray", "--address", "127.0.0.1:9"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LAB_RUNS": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: no Ray cluster at 127.0.0.1:9 (start one with `ray start --head`, or check --address)"
    ]
    assert not any(tmp_path.iterdir())


def test_stockfish_option_is_a_path_when_it_has_a_slash(tmp_path, monkeypatch):
    import shutil

    from lab_shared.tools import find_stockfish
    from lab_transcendence.arena_tasks import check_worker

    shutil.copy(find_stockfish(), tmp_path / "sf")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert check_worker("./sf") == str(tmp_path / "sf")  # ./sf: this folder's file, no PATH lookup
    with pytest.raises(LabError, match="not found on PATH or at"):
        check_worker("sf-missing")

"""`lab chess data synth --backend ray`: games in chunks on a local Ray cluster (a Stockfish per worker)
give the same corpus as the local backend; the round robin runs there too; a worker without Stockfish or an
unreachable cluster is one line before any game."""

import os
import subprocess
import sys

import pytest

from lab_shared.backend import Backend
from lab_shared.errors import LabError
from lab_shared.tools import find_stockfish
from lab_transcendence.synth import SynthSettings, corpus_tasks, default_experts, generate_corpus, play_many

pytestmark = pytest.mark.stockfish


def test_ray_corpus_matches_local(ray_local, tmp_path):
    sf = find_stockfish()
    s = SynthSettings(players=3, games=10, seed=1, depth=1, rating_games=0)
    local = generate_corpus(tmp_path / "local", s, sf, workers=1, chunk_games=4, show_progress=False)
    ray = generate_corpus(tmp_path / "ray", s, sf, chunk_games=4, show_progress=False, backend=Backend("ray"))
    assert (tmp_path / "ray" / "games.pgn").read_text() == (tmp_path / "local" / "games.pgn").read_text()
    assert (
        ray["synth_settings"] == local["synth_settings"] and ray["expert_ratings"] == local["expert_ratings"]
    )
    rated = SynthSettings(players=2, games=2, seed=0, depth=1, rating_games=2, anchors=[1], max_plies=40)
    meta = generate_corpus(tmp_path / "rated", rated, sf, show_progress=False, backend=Backend("ray"))
    assert all(e["rating"] is not None for e in meta["experts"])  # round robin played on the cluster


def test_ray_worker_without_stockfish_is_one_line(ray_local, tmp_path):
    tasks = corpus_tasks(default_experts(2), 0, 2, 0, 20)
    with pytest.raises(LabError) as err:
        list(play_many(tasks, str(tmp_path / "no-stockfish"), backend=Backend("ray")))
    assert len(str(err.value).splitlines()) == 1


def test_unreachable_address_is_one_line(tmp_path):
    out = tmp_path / "corpus"
    cmd = [
        sys.executable,
        "-m",
        "lab_shared.cli",
        "chess",
        "data",
        "synth",
        "--out",
        str(out),
        "--games",
        "2",
    ]
    proc = subprocess.run([*cmd, "--backend", "ray", "--address", "127.0.0.1:9"], capture_output=True,
                          text=True, env={**os.environ, "LAB_RUNS": str(tmp_path / "runs")})  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: no Ray cluster at 127.0.0.1:9 (start one with `ray start --head`, or check --address)"
    ]
    assert not out.exists()

"""`lab chess data positions --label-experts N`: every expert's move in sampled positions, as extra shards
the position trainer reads unchanged; legal moves from the right experts, seeded, resumable, the same on a
local Ray cluster; a corpus without experts or a missing Stockfish is one line, exit 2."""

import json
import os
import random
import shutil
import subprocess
import sys

import chess
import numpy as np
import pytest

from lab_shared.backend import Backend
from lab_shared.errors import LabError
from lab_shared.tools import find_stockfish
from lab_transcendence.expert_labels import add_labels, corpus_experts
from lab_transcendence.moves import index_move
from lab_transcendence.positions import convert, corpus_texts, load_positions, transcript_sans
from lab_transcendence.synth import SynthSettings, expert_move, generate_corpus, open_engine

pytestmark = pytest.mark.stockfish


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("labels") / "corpus"
    s = SynthSettings(players=2, games=4, seed=0, depth=1, rating_games=0, max_plies=30)
    generate_corpus(out, s, find_stockfish(), workers=1, show_progress=False)
    return out


def _labelled(corpus, folder, backend=None, n=6, seed=0):
    convert(corpus, folder, workers=1, unit_games=2, val_every=2, show_progress=False)
    return add_labels(folder, n, seed=seed, backend=backend, chunk=2, show_progress=False)


def _labels(folder):
    meta = json.loads((folder / "meta.json").read_text())
    names = [n for n in meta["shards"] if n.startswith("label-")]
    return {k: np.concatenate([np.load(folder / f"{n}.{k}.npy") for n in names]) for k in
            ("x", "y", "game", "ply", "expert")}  # fmt: skip


def test_labels_are_the_experts_legal_moves_and_seeded(corpus, tmp_path):
    meta = _labelled(corpus, tmp_path / "a")
    experts = corpus_experts(meta, corpus)
    lab = _labels(tmp_path / "a")
    assert meta["labels"]["pairs"] == 6 * len(experts) == len(lab["y"])
    assert sorted(np.bincount(lab["expert"]).tolist()) == [6] * len(experts)
    texts, _ = corpus_texts(corpus)
    engine = open_engine(find_stockfish())
    try:
        for i in range(len(lab["y"])):
            board = chess.Board()
            for san in transcript_sans(texts[lab["game"][i]])[: lab["ply"][i]]:
                board.push_san(san)
            f, t, _ = index_move(int(lab["y"][i]), board.turn == chess.BLACK)
            assert any(m.from_square == f and m.to_square == t for m in board.legal_moves)
            # the label is exactly that expert's move (same RNG stream and fresh engine game)
            e, j = int(lab["expert"][i]), i // len(experts)
            ex = experts[e]
            rng = random.Random(f"0-label-{j}-{ex.name}")
            move = expert_move(ex, board, engine, rng, game=("label", j, e))
            assert (move.from_square, move.to_square) == (f, t)
    finally:
        engine.quit()
    # the trainer's loader sees them as more pairs; the same seed gives the same labels, another seed others
    arrays, _ = load_positions(tmp_path / "a")
    assert len(arrays["y"]) == meta["positions"]
    _labelled(corpus, tmp_path / "b")
    again = _labels(tmp_path / "b")
    assert all((lab[k] == again[k]).all() for k in lab)
    convert(corpus, tmp_path / "j2", workers=1, unit_games=2, val_every=2, show_progress=False)
    add_labels(tmp_path / "j2", 6, chunk=2, workers=2, show_progress=False)  # two processes: the same labels
    pooled = _labels(tmp_path / "j2")
    assert all((lab[k] == pooled[k]).all() for k in lab)
    _labelled(corpus, tmp_path / "c", seed=1)
    other = _labels(tmp_path / "c")
    assert list(zip(other["game"], other["ply"])) != list(zip(lab["game"], lab["ply"]))


def test_resume_redoes_only_missing_chunks(corpus, tmp_path):
    folder = tmp_path / "p"
    _labelled(corpus, folder)
    before = _labels(folder)
    # a labelling killed after two of its three chunks: meta.json without labels, one shard missing
    meta = json.loads((folder / "meta.json").read_text())
    labels = meta.pop("labels")
    meta["positions"] -= labels["pairs"]
    meta["shards"] = [s for s in meta["shards"] if not s.startswith("label-")]
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "labels-progress.json").write_text(json.dumps({"key": labels["key"]}))
    for k in ("x", "y", "game", "ply", "expert"):
        (folder / f"label-00002.{k}.npy").unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("label-0000[01].*.npy")}
    calls = []
    import lab_transcendence.expert_labels as el

    real = el.label_chunk
    el.label_chunk = lambda arg: calls.append(arg[0]) or real(arg)
    try:
        add_labels(folder, 6, chunk=2, show_progress=False)
    finally:
        el.label_chunk = real
    assert calls == [4]  # only the missing chunk (positions 4, 5) ran again
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("label-0000[01].*.npy")} == stamps
    after = _labels(folder)
    assert all((before[k] == after[k]).all() for k in before)


def _cli(*args, env_extra=None):
    cmd = [sys.executable, "-m", "lab_shared.cli", "chess", "data", "positions", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env_extra or {})})


def test_bad_input_is_one_line_exit_2(corpus, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare)
    meta = json.loads((bare / "meta.json").read_text())
    meta.pop("experts", None)
    (bare / "meta.json").write_text(json.dumps(meta))
    r = _cli(bare, "--out", tmp_path / "o1", "--label-experts", 4)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no expert definitions" in r.stderr and not (tmp_path / "o1").exists()
    r = _cli(corpus, "--out", tmp_path / "o2", "--label-experts", 4, "--stockfish", tmp_path / "nosf")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Stockfish not found" in r.stderr and not (tmp_path / "o2").exists()
    r = _cli(
        corpus, "--out", tmp_path / "o4", "--label-experts", 2, "--backend", "ray", "--address", "127.0.0.1:9"
    )
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: no Ray cluster at 127.0.0.1:9 (start one with `ray start --head`, or check --address)"
    ]
    assert not (tmp_path / "o4").exists()
    r = _cli(corpus, "--out", tmp_path / "o5", "--backend", "ray", "--address", "127.0.0.1:9")  # no labels
    assert (
        r.returncode == 2 and "no Ray cluster at 127.0.0.1:9" in r.stderr and not (tmp_path / "o5").exists()
    )
    r = _cli(corpus, "--out", tmp_path / "o3", "--label-experts", 2, "--label-chunk", 1, "-j", 1)
    assert r.returncode == 0, r.stderr
    assert "+ 4 expert labels (2 positions x 2 experts)" in r.stdout


def test_position_trainer_reads_labelled_folders(corpus, tmp_path, monkeypatch):
    from lab_shared.trainer import TrainerConfig
    from lab_transcendence.position_config import PositionConfig
    from lab_transcendence.train import ChessTrainConfig, train

    meta = _labelled(corpus, tmp_path / "p")
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    cfg = ChessTrainConfig(
        data=tmp_path / "p",
        model="position",
        position=PositionConfig(width=16, layers=1, head_dim=8),
        trainer=TrainerConfig(max_steps=2, batch_size=16, eval_every=2, progress=False, device="cpu"),
    )
    res = train(cfg, name="labels")
    assert res["model"] == "position" and res["step"] == 2
    assert meta["positions"] == len(load_positions(tmp_path / "p")[0]["y"])


def test_ray_labels_match_local(ray_local, corpus, tmp_path):
    _labelled(corpus, tmp_path / "local")
    _labelled(corpus, tmp_path / "ray", backend=Backend("ray"))
    a, b = _labels(tmp_path / "local"), _labels(tmp_path / "ray")
    assert all((a[k] == b[k]).all() for k in a)
    # a worker that cannot run Stockfish: one line before any chunk is labelled
    folder = tmp_path / "nosf"
    convert(corpus, folder, workers=1, unit_games=2, val_every=2, show_progress=False)
    with pytest.raises(LabError) as err:
        add_labels(folder, 4, stockfish=str(tmp_path / "sf"), backend=Backend("ray"), show_progress=False)
    assert len(str(err.value).splitlines()) == 1 and "health check" in str(err.value)
    assert not list(folder.glob("label-*"))

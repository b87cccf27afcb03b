"""End to end through the CLI: synth corpus -> train -> interrupt -> resume == uninterrupted run."""

import pytest
import torch
from typer.testing import CliRunner

from lab_shared.io import load_tensors, read_json
from lab_transcendence.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.stockfish]


def run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def run_dir_of(output: str) -> str:
    return output.split("run: ")[1].split()[0]


def test_synth_train_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_PROGRESS", "0")
    data = tmp_path / "synth"
    out = run(
        "data",
        "synth",
        "--out",
        data,
        "--players",
        2,
        "--games",
        12,
        "--rating-games",
        0,
        "--depth",
        1,
        "-j",
        1,
    )
    assert "kept 12 of 12 games" in out
    common = [
        "train",
        "--data",
        data,
        "--preset",
        "tiny",
        "--block-size",
        63,
        "--batch-size",
        4,
        "--set",
        "trainer.ckpt_every=3",
    ]
    full = run_dir_of(run(*common, "--max-steps", 6, "--name", "full"))
    part = run_dir_of(run(*common, "--max-steps", 3, "--name", "part"))
    run("train", "--resume", part, "--max-steps", 6)
    a = load_tensors(f"{full}/model/model.safetensors")
    b = load_tensors(f"{part}/model/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a resume that changes a setting is refused (one line naming the key) unless --force, which is recorded
    res = CliRunner().invoke(app, ["train", "--resume", part, "--set", "trainer.lr=0.5"])
    assert res.exit_code != 0 and "trainer.lr (0.001 -> 0.5)" in str(res.exception)
    assert read_json(f"{part}/config.json")["trainer"]["lr"] == 0.001
    run("train", "--resume", part, "--set", "trainer.lr=0.5", "--force")
    prov = read_json(f"{part}/provenance.json")
    assert [r["forced"] for r in prov["resumes"]] == [False, True] and prov["config"]["trainer"]["lr"] == 0.5
    assert read_json(f"{part}/config.json")["trainer"]["lr"] == 0.5


def test_bad_inputs_are_one_line_errors(tmp_path):
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "none"), "--preset", "tiny"])
    assert res.exit_code != 0 and "no meta.json" in str(res.exception)
    res = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "s"), "--players", "1"])
    assert res.exit_code != 0 and "at least 2" in str(res.exception)
    res = CliRunner().invoke(app, ["data", "lichess", str(tmp_path / "x.pgn"), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "not found" in str(res.exception)

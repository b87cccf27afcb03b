"""`lab sfa sweep --backend ray`: every (grid point, seed) a Ray task on a local cluster, the same point
results as the local backend, written by the driver as they finish (so a resume redoes nothing finished);
an unreachable cluster is one line and exit 2 before the sweep folder exists."""

import json
from pathlib import Path

import numpy as np
import pytest

from lab_sfa.sweep import run_sweep
from lab_shared.backend import Backend
from lab_shared.rundir import RunDir

TIMING = ("steps_per_s", "time", "wall", "seconds", "_s")


def _npz(path: Path, shift: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", 60), ("test", 30)):
        y = rng.integers(0, 3, n)
        x = rng.uniform(0, 60, (n, 10, 10))
        for i, c in enumerate(y):
            x[i, (2 + 2 * c + shift) % 7 :][:3, 2 * c : 2 * c + 3] = 255
        out[f"x_{split}"], out[f"y_{split}"] = x.astype(np.uint8), y.astype(np.int64)
    np.savez(path, **out)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("tasks")
    _npz(d / "pre.npz", 0, 1)
    _npz(d / "a.npz", 2, 2)
    (d / "seq.toml").write_text(
        'name = "tiny"\nimage_size = 10\n[pretrain]\nnpz = "pre.npz"\n'
        '[[tasks]]\nname = "a"\nnpz = "a.npz"\n[[tasks]]\nname = "a-perm"\nnpz = "a.npz"\ntransform = "permute"\n'
    )
    base = {
        "sequence.name": str(d / "seq.toml"), "sequence.width": 4, "sequence.n_train": 40, "sequence.n_val": 8,
        "sequence.n_test": 20, "trainer.max_steps": 4, "trainer.batch_size": 8, "pretrain_steps": 2,
    }  # fmt: skip
    return {
        "seeds": [0, 1],
        "base": base,
        "grid": [{"method": "seq"}, {"method": "sfa", "method.beta": [0.2, 0.5]}],
    }


def _points(folder: Path) -> dict[str, dict]:
    out = {}
    for f in sorted((folder / "points").glob("*.json")):
        res = json.loads(f.read_text())
        res["pretrain"] = {k: v for k, v in res.get("pretrain", {}).items() if k == "pretrained"}  # not cache
        out[f.name] = {k: v for k, v in res.items() if not any(t in k for t in TIMING)}
    return out


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    diff = [(f, k, a[f][k], b[f].get(k)) for f in a for k in a[f] if a[f][k] != b[f].get(k)]
    assert not diff, diff[:3]


def test_ray_sweep_matches_local_and_resumes(ray_local, spec, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    local = RunDir.create("sfa-sweep", "local")
    run_sweep(spec, local)
    ray = RunDir.create("sfa-sweep", "ray")
    summary = run_sweep(spec, ray, backend=Backend("ray"))
    assert len(_points(local.path)) == 6
    _same(_points(ray.path), _points(local.path))
    assert {r["method"] for r in summary["table"]} == {"seq", "sfa"}
    # resume on Ray after losing two runs: only those two run again, the rest are untouched
    files = sorted((ray.path / "points").glob("*.json"))
    for f in files[:2]:
        f.unlink()
    mtimes = {f.name: f.stat().st_mtime_ns for f in files[2:]}
    run_sweep(spec, ray, backend=Backend("ray"))
    assert {f.name: f.stat().st_mtime_ns for f in files[2:]} == mtimes
    _same(_points(ray.path), _points(local.path))


def test_unreachable_address_is_one_line(spec, tmp_path, lab_inproc, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(spec))
    r = lab_inproc("sfa", "sweep", str(sweep), "--backend", "ray", "--address", "127.0.0.1:9")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: no Ray cluster at 127.0.0.1:9 (start one with `ray start --head`, or check --address)"
    ]
    assert not (tmp_path / "runs").exists()
    r = lab_inproc("sfa", "sweep", str(sweep), "--backend", "spark")
    assert (
        r.returncode == 2
        and "'spark' is not one of local, ray" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )

"""`lab sfa run` resumes per task: a real `lab sfa run` subprocess is stopped by SIGKILL, SIGTERM or SIGINT at
a task boundary or mid-task (LAB_SFA_SIGNAL_AT places the signal exactly), then continued with --resume; the
final weights and results.json (timing aside) are bit-identical to an uninterrupted run for every method, no
metrics row is logged twice, and a resume with a changed config is refused unless --force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lab_shared.errors import LabError
from lab_shared.io import load_tensors, read_json
from lab_shared.metrics import read_metrics

T, K = 12, 3  # steps per task, tasks
TIMING = ("train_time_s", "steps_per_s", "pretrain")  # pretrain: time and whether the cache was hit


def _npz(path: Path, shift: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 90)
    x = rng.uniform(0, 60, (90, 12, 12))
    for i, c in enumerate(y):
        r, col = (2 + 3 * c + shift) % 9, (1 + 4 * c) % 9
        x[i, r : r + 3, col : col + 3] = 255
    x = x.astype(np.uint8)
    np.savez(path, x_train=x[:70], y_train=y[:70], x_test=x[70:], y_test=y[70:])


@pytest.fixture(scope="module")
def taskfile(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tasks")
    for name, shift, seed in (("pre", 0, 1), ("a", 2, 2), ("b", 4, 3)):
        _npz(d / f"{name}.npz", shift, seed)
    toml = d / "seq.toml"
    toml.write_text(
        'name = "tiny"\nimage_size = 12\n[pretrain]\nnpz = "pre.npz"\n'
        '[[tasks]]\nname = "a"\nnpz = "a.npz"\n[[tasks]]\nname = "b"\nnpz = "b.npz"\n'
        '[[tasks]]\nname = "a-perm"\nnpz = "a.npz"\ntransform = "permute"\n'
    )
    return toml


METHOD_ARGS = {
    "seq": [],
    "sfa": ["--beta", "0.3", "--p", "0.34"],
    "replay": ["--buffer-size", "10"],
    "l2": ["--lam", "2"],
    "ewc": ["--lam", "5", "--set", "method.fisher_samples=8"],
    "ties": ["--lam", "0.8"],
    "task_arithmetic": ["--lam", "0.5"],
    "wise_ft": ["--alpha", "0.6"],
    "multitask": [],
}


def _args(taskfile: Path, method: str, name: str, *extra: str) -> list[str]:
    sets = ["pretrain_steps=4", "sequence.n_train=60", "sequence.n_test=20", "sequence.n_val=10",
            "sequence.n_pretrain=60", "trainer.batch_size=8", "trainer.log_every=1", "curve_points=3"]  # fmt: skip
    return [
        "sfa", "run", "--method", method, "--sequence", str(taskfile), "--steps", str(T), "--width", "4",
        "--lr", "0.003", "--name", name, *[a for s in sets for a in ("--set", s)], *METHOD_ARGS[method], *extra,
    ]  # fmt: skip


def _subprocess(args: list[str], runs: Path, signal_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAB_RUNS": str(runs), "LAB_PROGRESS": "0"}
    env.pop("LAB_SFA_SIGNAL_AT", None)
    if signal_at:
        env["LAB_SFA_SIGNAL_AT"] = signal_at
    cmd = [sys.executable, "-m", "lab_shared.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _folder(runs: Path, name: str) -> Path:
    (path,) = (runs / "sfa").glob(f"{name}-*")
    return path


def _results(run: Path) -> dict:
    res = read_json(run / "results.json")
    return {k: v for k, v in res.items() if k not in TIMING}


def _assert_same_as(run: Path, ref: Path) -> None:
    a, b = load_tensors(run / "model.safetensors"), load_tensors(ref / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "final weights differ"
    assert _results(run) == _results(ref)
    rows = read_metrics(run / "metrics.jsonl")
    loss_steps = [r["step"] for r in rows if any(k.endswith("/loss") for k in r)]
    assert loss_steps == list(range(1, K * T + 1))  # every step logged once, none twice
    assert [r["step"] for r in rows if "task" in r] == [T * (k + 1) for k in range(K)]
    assert not list((run / "checkpoints").iterdir())  # the per-task state is gone once the run is done


@pytest.fixture(autouse=True)
def _clear_stop_flag():
    """An in-process stop signal leaves the core's flag set: clear it so later tests train normally."""
    from lab_shared import signals

    yield
    signals.clear()


def _check_stopped(cut, run: Path, sig: str, task: int, step: int, every: int) -> None:
    """What a stopped run leaves: exit code, one closing line with the resume command, the saved state."""
    assert not (run / "results.json").exists() and not (run / "model.safetensors").exists()
    before = f"after-task-{task - 1:03d}" if task else "after-pretrain"
    assert (run / "checkpoints" / before / "state.json").is_file()
    if sig == "SIGKILL":
        assert cut.returncode == -9, cut.stderr
    else:
        assert cut.returncode == {"SIGTERM": 143, "SIGINT": 130, "SIGUSR1": 138}[sig], cut.stderr
        last = cut.stderr.strip().splitlines()[-1]
        stopped = task * T + (step + 1 if step else 0)  # mid-task: at the next step boundary
        assert last.startswith(f"stopped by {sig} at step {stopped}; checkpoint "), cut.stderr
        assert last.endswith(f"--resume {run.absolute()}")
    checkpointed = (
        every > 0 and step >= every if sig == "SIGKILL" else step > 0
    )  # a checkpoint inside the task
    assert (run / "checkpoints" / f"task-{task:03d}-partial").is_dir() == checkpointed


# (method, signal, task, step, ckpt_every): step 0 = the task boundary before `task`
SCENARIOS = [
    ("seq", "SIGKILL", 1, 5, 0),  # killed mid-task, no checkpoint inside it: the task is redone
    ("sfa", "SIGTERM", 1, 5, 0),  # exact checkpoint mid-task: SFA's anchor and curve rows restored
    ("replay", "SIGTERM", 2, 0, 0),  # stopped at a task boundary: the buffer and its RNG state
    ("l2", "SIGKILL", 2, 0, 0),  # killed right after a task's state was saved
    ("ewc", "SIGKILL", 1, 8, 4),  # killed mid-task, resumed from the trainer.ckpt_every checkpoint (Fisher)
    ("ties", "SIGTERM", 1, 7, 0),  # stored fine-tuned models
    ("task_arithmetic", "SIGKILL", 2, 6, 4),  # killed two steps after the ckpt_every checkpoint at step 4
]


@pytest.mark.parametrize(("method", "sig", "task", "step", "every"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_subprocess_stopped_then_resumed_is_bit_identical(taskfile, tmp_path, monkeypatch, lab_inproc, method,
                                                          sig, task, step, every):  # fmt: skip
    runs = tmp_path / "runs"
    monkeypatch.setenv("LAB_RUNS", str(runs))
    monkeypatch.delenv("LAB_SFA_SIGNAL_AT", raising=False)
    extra = ["--set", f"trainer.ckpt_every={every}"] if every else []
    ref = lab_inproc(*_args(taskfile, method, "ref", *extra))  # uninterrupted, in this process
    assert ref.returncode == 0, ref.stderr
    cut = _subprocess(_args(taskfile, method, "cut", *extra), runs, f"{sig}:{task}:{step}")
    run = _folder(runs, "cut")
    _check_stopped(cut, run, sig, task, step, every)
    assert "Traceback" not in cut.stderr
    if method == "seq":  # the resume as a fresh process too
        res = _subprocess(_args(taskfile, method, "cut", *extra, "--resume", str(run)), runs)
    else:
        res = lab_inproc(*_args(taskfile, method, "cut", *extra, "--resume", str(run)))
    assert res.returncode == 0, res.stderr
    _assert_same_as(run, _folder(runs, "ref"))
    assert len(read_json(run / "provenance.json")["resumes"]) == 1


@pytest.mark.parametrize(("method", "stops"), [("wise_ft", ["SIGTERM:1:4"]), ("multitask", ["SIGTERM:1:0"]),
                                               ("sfa", ["SIGTERM:0:3", "SIGUSR1:2:0"])])  # fmt: skip
def test_in_process_stops_then_resumes_are_bit_identical(
    taskfile, tmp_path, monkeypatch, lab_inproc, method, stops
):
    """The same through the real signal handler in this process (cheaper): every method, and a run stopped
    twice (once mid-task, once again after resuming)."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("LAB_RUNS", str(runs))
    monkeypatch.delenv("LAB_SFA_SIGNAL_AT", raising=False)
    assert lab_inproc(*_args(taskfile, method, "ref")).returncode == 0
    run = None
    for stop in stops:
        monkeypatch.setenv("LAB_SFA_SIGNAL_AT", stop)
        resume = ["--resume", str(run)] if run else []
        cut = lab_inproc(*_args(taskfile, method, "cut", *resume))
        run = _folder(runs, "cut")
        sig, task, step = stop.split(":")
        _check_stopped(cut, run, sig, int(task), int(step), 0)
    monkeypatch.delenv("LAB_SFA_SIGNAL_AT")
    assert lab_inproc(*_args(taskfile, method, "cut", "--resume", str(run))).returncode == 0
    _assert_same_as(run, _folder(runs, "ref"))
    assert len(read_json(run / "provenance.json")["resumes"]) == len(stops)


def test_changed_config_is_refused_unless_forced(taskfile, tmp_path, monkeypatch, lab_inproc):
    runs = tmp_path / "runs"
    monkeypatch.setenv("LAB_RUNS", str(runs))
    monkeypatch.setenv("LAB_SFA_SIGNAL_AT", "SIGTERM:1:0")
    cut = lab_inproc(*_args(taskfile, "l2", "cut"))
    monkeypatch.delenv("LAB_SFA_SIGNAL_AT")
    assert cut.returncode == 143, cut.stderr
    run = _folder(runs, "cut")
    before = (run / "metrics.jsonl").read_bytes()
    bad = lab_inproc(*_args(taskfile, "l2", "cut", "--lam", "3", "--resume", str(run)))
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr
    assert lines[0].startswith(f"error: refusing to resume {run}") and "method.lam" in lines[0]
    assert (run / "metrics.jsonl").read_bytes() == before and not (run / "results.json").exists()
    other = lab_inproc(*_args(taskfile, "seq", "cut", "--resume", str(run)))  # another method's options
    assert other.returncode == 2 and "method.name" in other.stderr
    forced = lab_inproc(*_args(taskfile, "l2", "cut", "--lam", "3", "--force", "--resume", str(run)))
    assert forced.returncode == 0, forced.stderr
    prov = read_json(run / "provenance.json")
    assert prov["resumes"][-1]["forced"] is True and "method.lam" in prov["resumes"][-1]["changed"]
    assert read_json(run / "config.json")["method"]["lam"] == 3.0
    again = lab_inproc(*_args(taskfile, "l2", "cut", "--lam", "3", "--resume", str(run)))
    assert again.returncode == 0 and "run already finished" in again.stdout


def test_method_parameters_are_declared_and_shown(lab_inproc):
    from lab_sfa.methods.config import MethodConfig, resolve_method
    from lab_sfa.methods.registry import method_names, method_params

    shown = lab_inproc("sfa", "methods", "--json")
    assert shown.returncode == 0
    table = json.loads(shown.stdout)
    assert list(table) == method_names()
    assert [p["name"] for p in table["sfa"]["params"]] == ["beta", "p", "reset_optimizer", "buffers"]
    assert table["sfa"]["params"][0]["default"] == 0.5 and table["seq"]["params"] == []
    for name in method_names():  # every declared parameter: a description, and a default in its own range
        cfg = resolve_method(MethodConfig(name=name))
        for p in method_params(name):
            assert p.help and getattr(cfg, p.name) == p.default
            p.check(name, p.default)
    help_text = lab_inproc("sfa", "run", "--help").stdout
    assert "method.beta: float = 0.5, [0, 1]" in help_text and "method.k: float = 0.2" in help_text
    from lab_sfa.sweep import parse_spec, point_config

    base, points, _, _ = parse_spec(
        {"base": {"method.lam": 7.0}, "grid": [{"method": "seq"}, {"method": "l2"}]}
    )
    assert [point_config(base, p, 0).method.lam for p in points] == [
        None,
        7.0,
    ]  # a shared key: its users only
    with pytest.raises(LabError, match="method.lam is a parameter of none of the grid's methods"):
        parse_spec({"base": {"method.lam": 7.0}, "grid": [{"method": "seq"}]})
    one = lab_inproc("sfa", "methods", "ties").stdout.splitlines()
    assert one[0].startswith("ties: ") and [ln.split(":")[0].strip() for ln in one[1:]] == [
        "method.lam",
        "method.k",
    ]
    assert lab_inproc("sfa", "methods", "nope").returncode == 2
    bad = lab_inproc("sfa", "run", "--method", "seq", "--set", "method.beta=0.5")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: method seq does not use method.beta (its parameters: none; see `lab sfa methods`)"
    )


def test_changed_task_data_is_refused_unless_forced(tmp_path, monkeypatch, lab_inproc):
    """The task file's own bytes are in provenance.json; the data it points at is fingerprinted in the state."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("LAB_RUNS", str(runs))
    d = tmp_path / "tasks"
    d.mkdir()
    for name, shift, seed in (("pre", 0, 1), ("a", 2, 2), ("b", 4, 3)):
        _npz(d / f"{name}.npz", shift, seed)
    toml = d / "seq.toml"
    toml.write_text(
        'image_size = 12\n[pretrain]\nnpz = "pre.npz"\n[[tasks]]\nname = "a"\nnpz = "a.npz"\n'
        '[[tasks]]\nname = "b"\nnpz = "b.npz"\n[[tasks]]\nname = "c"\nnpz = "a.npz"\ntransform = "permute"\n'
    )
    monkeypatch.setenv("LAB_SFA_SIGNAL_AT", "SIGTERM:1:0")
    assert lab_inproc(*_args(toml, "seq", "cut")).returncode == 143
    monkeypatch.delenv("LAB_SFA_SIGNAL_AT")
    run = _folder(runs, "cut")
    _npz(d / "b.npz", 4, 99)  # same path, other examples
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    bad = lab_inproc(*_args(toml, "seq", "cut", "--resume", str(run)))
    assert bad.returncode == 2 and "training data changed" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before
    assert lab_inproc(*_args(toml, "seq", "cut", "--force", "--resume", str(run))).returncode == 0

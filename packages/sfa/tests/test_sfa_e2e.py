"""End to end on a tiny user task sequence (TOML -> .npz + image folder): every method, the CLI, sweeps."""

import json
from pathlib import Path

import numpy as np
import pytest

from lab_sfa.methods.config import MethodConfig, pick_params
from lab_sfa.methods.registry import method_names
from lab_sfa.sequences import SequenceConfig, get_sequence
from lab_sfa.task_loop import RunConfig, run_continual
from lab_shared.errors import LabError
from lab_shared.trainer import TrainerConfig

SIZE = 12


def _images(n: int, n_classes: int, shift: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class c = a bright 3x3 square at a class-specific spot (shifted per task) plus noise."""
    y = rng.integers(0, n_classes, n)
    x = rng.uniform(0, 60, (n, SIZE, SIZE))
    for i, c in enumerate(y):
        r, col = (2 + 3 * c + shift) % (SIZE - 3), (1 + 4 * c) % (SIZE - 3)
        x[i, r : r + 3, col : col + 3] = 255
    return x.astype(np.uint8), y.astype(np.int64)


def _npz(path: Path, shift: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xtr, ytr = _images(120, 3, shift, rng)
    xte, yte = _images(40, 3, shift, rng)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


@pytest.fixture(scope="module")
def taskfile(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("tasks")
    _npz(d / "pre.npz", 0, 1)
    _npz(d / "a.npz", 2, 2)
    rng = np.random.default_rng(3)
    x, y = _images(60, 3, 4, rng)
    for i, (img, c) in enumerate(zip(x, y)):
        (d / "b" / f"class{c}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / "b" / f"class{c}" / f"{i}.png")
    toml = d / "seq.toml"
    toml.write_text(
        'name = "tiny"\nimage_size = 12\n[pretrain]\nnpz = "pre.npz"\n'
        '[[tasks]]\nname = "a"\nnpz = "a.npz"\n'
        '[[tasks]]\nname = "b"\nfolder = "b"\ntest_fraction = 0.25\n'
        '[[tasks]]\nname = "a-perm"\nnpz = "a.npz"\ntransform = "permute"\n'
    )
    return toml


def _cfg(taskfile: Path, method: str, **kw) -> RunConfig:
    seq = SequenceConfig(name=str(taskfile), width=4, n_train=80, n_test=30, n_val=12, n_pretrain=80)
    for k, v in kw.pop("seq", {}).items():
        setattr(seq, k, v)
    trainer = TrainerConfig(
        max_steps=6, batch_size=8, lr=3e-3, lr_schedule="constant", progress=False, log_every=3
    )
    return RunConfig(
        sequence=seq,
        method=MethodConfig(name=method, **pick_params(method, **kw)),
        trainer=trainer,
        pretrain_steps=4,
    )


def test_taskfile_sequence(taskfile):
    seq = get_sequence(str(taskfile), SequenceConfig(name=str(taskfile), n_train=80, n_test=30, n_val=12))
    assert [t.name for t in seq.tasks] == ["a", "b", "a-perm"]
    assert seq.pretrain is not None and len(seq.tasks[0].train) == 80
    assert len(seq.tasks[1].test) == 15 and seq.tasks[1].train.x.shape[1:] == (1, SIZE, SIZE)
    assert float(seq.tasks[0].train.x.max()) <= 1.0


@pytest.mark.parametrize("method", method_names())
def test_every_method_end_to_end(taskfile, method, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path))
    res = run_continual(_cfg(taskfile, method, p=0.5, beta=0.3, buffer_size=10, fisher_samples=8))
    R = np.array(res["R"])
    assert R.shape == (3, 3) and ((0 <= R) & (R <= 1)).all()
    assert len(res["Rval"]) == 3 and 0 <= res["val_acc"] <= 1
    assert res["curves"] and res["curves"][0]["task"] == -1
    copies = res["max_extra_param_copies"]
    expected = {"seq": 0, "multitask": 0, "sfa": 1, "l2": 1, "ewc": 2, "replay": 0, "wise_ft": 1}
    if method in expected:
        assert copies == pytest.approx(expected[method], abs=0.01)
    if method in ("task_arithmetic", "ties"):
        assert copies == pytest.approx(3, abs=0.01)  # one fine-tuned model per task
    stored = {
        "replay": 10,
        "multitask": 80 + 36,
    }  # multitask keeps tasks a (80) and b (45 - 9 val) at stage 3
    assert res["max_stored_examples"] == stored.get(method, 0)


def test_sfa_curves_at_every_averaging_point(taskfile, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path))
    res = run_continual(_cfg(taskfile, "sfa", p=0.34, beta=0.2))
    steps = [c["step"] for c in res["curves"] if c["task"] == 0]
    assert steps == [2, 4, 6]  # every round(0.34 * 6) = 2 steps, the end included


def test_resnet_multi_head(taskfile, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path))
    cfg = _cfg(taskfile, "ewc", lam=10.0, fisher_samples=4, seq={"model": "resnet", "head": "multi"})
    cfg.pretrain_steps = 0
    with pytest.raises(LabError, match="multi-head"):
        run_continual(cfg)  # a multi-head sequence cannot share a pretraining head
    cfg.sequence.name = str(_no_pretrain(taskfile))
    res = run_continual(cfg)
    assert len(res["R"]) == 3


def _no_pretrain(taskfile: Path) -> Path:
    text = taskfile.read_text().replace('[pretrain]\nnpz = "pre.npz"\n', "")
    out = taskfile.with_name("nopre.toml")
    out.write_text(text)
    return out


def test_bad_task_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[tasks]]\nnpz = "missing.npz"\n')
    with pytest.raises(LabError, match="not found"):
        get_sequence(str(bad))
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    bad.write_text('[[tasks]]\nnpz = "broken.npz"\n')
    with pytest.raises(LabError, match="broken.npz"):
        get_sequence(str(bad))
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((4, 8, 8)))
    bad.write_text('[[tasks]]\nnpz = "partial.npz"\n')
    with pytest.raises(LabError, match="y_train"):
        get_sequence(str(bad))
    bad.write_text("[[tasks]\n")
    with pytest.raises(LabError, match="invalid TOML|malformed"):
        get_sequence(str(bad))
    with pytest.raises(LabError, match="unknown sequence"):
        get_sequence("no-such-sequence")


@pytest.mark.slow
def test_cli_run_sweep_and_bad_input(taskfile, tmp_path, monkeypatch, lab_inproc, lab_subprocess):
    """`lab sfa run | sweep | table` through the real entry point: in this process (the same `main`, no
    interpreter start each), and once as a fresh process for the exit code and the one-line error."""
    env = {"LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    common = [
        "--sequence", str(taskfile), "--steps", "4", "--width", "4",
        "--set", "trainer.batch_size=8", "--set", "pretrain_steps=2", "--set", "sequence.n_train=40",
        "--set", "sequence.n_val=8", "--set", "sequence.n_test=20",
    ]  # fmt: skip
    r = lab_inproc("sfa", "run", "--method", "sfa", "--beta", "0.3", "--p", "0.5", *common)
    assert r.returncode == 0, r.stderr
    run_dir = next((tmp_path / "runs" / "sfa").glob("sfa-*"))
    res = json.loads((run_dir / "results.json").read_text())
    assert (
        len(res["R"]) == 3
        and (run_dir / "plots" / "curves.png").exists()
        and (run_dir / "index.html").exists()
    )
    assert json.loads((run_dir / "config.json").read_text())["method"]["beta"] == 0.3

    r = lab_subprocess(
        "sfa", "run", "--method", "sfa", "--beta", "1.5", *common, env=env
    )  # the real entry point
    assert r.returncode == 2 and r.stderr.strip() == "error: method.beta (sfa) must be in [0, 1], got 1.5", (
        r.stderr
    )

    spec = tmp_path / "sweep.toml"
    spec.write_text(
        "seeds = [0, 1]\n[base]\n"
        + "".join(
            f'"{k}" = {v}\n'
            for k, v in [
                ("sequence.name", json.dumps(str(taskfile))),
                ("sequence.width", 4),
                ("sequence.n_train", 40),
                ("sequence.n_val", 8),
                ("sequence.n_test", 20),
                ("trainer.max_steps", 4),
                ("trainer.batch_size", 8),
                ("pretrain_steps", 2),
            ]
        )  # fmt: skip
        + '[[grid]]\nmethod = "seq"\n[[grid]]\nmethod = "sfa"\n"method.beta" = [0.2, 0.5]\n'
    )
    r = lab_inproc("sfa", "sweep", str(spec))
    assert r.returncode == 0, r.stderr
    sweep_dir = next((tmp_path / "runs" / "sfa-sweep").glob("sweep-*"))
    points = sorted((sweep_dir / "points").glob("*.json"))
    assert len(points) == 6
    mtimes = [p.stat().st_mtime_ns for p in points]
    table = (sweep_dir / "table.md").read_text()
    assert "| sfa |" in table and "±" in table
    r = lab_inproc("sfa", "sweep", "--resume", str(sweep_dir))  # nothing left to do
    assert r.returncode == 0, r.stderr
    assert [p.stat().st_mtime_ns for p in sorted((sweep_dir / "points").glob("*.json"))] == mtimes
    assert (sweep_dir / "plots" / "acc_by_method.png").exists()
    r = lab_inproc("sfa", "table", str(sweep_dir), "--json")  # the table as JSON, for scripts
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["folder"] == str(sweep_dir) and len(out["table"]) == len(table.strip().splitlines()) - 2
    # a changed base config: refused in one line unless --force; forced, it reuses no old point
    changed = tmp_path / "sweep2.toml"
    changed.write_text(spec.read_text().replace('"trainer.max_steps" = 4', '"trainer.max_steps" = 3'))
    recorded = (sweep_dir / "sweep.json").read_text()
    r = lab_inproc("sfa", "sweep", str(changed), "--resume", str(sweep_dir))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "base.trainer.max_steps (4 -> 3)" in r.stderr and "--force" in r.stderr
    assert (sweep_dir / "sweep.json").read_text() == recorded
    r = lab_inproc("sfa", "sweep", str(changed), "--resume", str(sweep_dir), "--only", "seq", "--force")
    assert r.returncode == 0, r.stderr
    assert len(list((sweep_dir / "points").glob("*.json"))) == 8  # 2 new seq runs beside the 6 old ones
    assert json.loads((sweep_dir / "sweep.json").read_text())["base"]["trainer.max_steps"] == 3
    prov = json.loads((sweep_dir / "provenance.json").read_text())
    assert [r["forced"] for r in prov["resumes"]] == [False, True]


def test_cli_bad_input_is_one_clear_error(taskfile, tmp_path, monkeypatch):
    """In-process: every bad input reaches the `lab` entry point as a LabError (printed as one line, exit 2)."""
    from typer.testing import CliRunner

    from lab_shared.cli import app

    monkeypatch.setenv("LAB_RUNS", str(tmp_path))
    for args, msg in [
        (["--method", "sfa", "--p", "0"], "method.p (sfa) must be in (0, 1]"),
        (["--method", "seq", "--set", "method.beta=0.5"], "method seq does not use method.beta"),
        (["--method", "l2", "--beta", "0.5"], "its parameters: method.lam;"),
        (["--set", "method.colour=red"], "unknown config key 'method.colour'"),
        (["--sequence", str(tmp_path / "none.toml")], "not found"),
    ]:
        res = CliRunner().invoke(app, ["sfa", "run", "--steps", "2", *args])
        assert isinstance(res.exception, LabError) and msg in str(res.exception), res.output
    res = CliRunner().invoke(app, ["sfa", "run", "--steps", "2", "--method", "nope"])  # a choice option
    assert res.exit_code == 2 and "'nope' is not one of seq, multitask, sfa" in res.output
    from lab_sfa.images.data import load_fmnist

    monkeypatch.setenv("LAB_FMNIST_DIR", str(tmp_path))  # a dataset package that is not installed
    load_fmnist.cache_clear()
    try:
        res = CliRunner().invoke(app, ["sfa", "run", "--steps", "2"])
    finally:
        load_fmnist.cache_clear()
    assert isinstance(res.exception, LabError) and "dataset-fashion-mnist" in str(res.exception)

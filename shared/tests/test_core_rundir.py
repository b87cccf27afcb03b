"""Run folders that refuse to mix: lock, provenance, resume checks, temp cleanup, umask, names, one-line
errors at the CLI boundary."""

import json
import math
import os
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from lab_shared import provenance
from lab_shared.config import load_config
from lab_shared.data import TensorData
from lab_shared.errors import ConfigError, LabError
from lab_shared.io import atomic_write_json, atomic_write_text, read_json
from lab_shared.metrics import read_metrics
from lab_shared.rundir import RunDir
from lab_shared.trainer import Trainer, TrainerConfig


@dataclass
class Cfg:
    data: Path | None = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _py(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, **kw
    )


def test_second_writer_is_refused_with_one_line(tmp_path):
    run = RunDir.create("t", "x", {"a": 1}, root=tmp_path)
    code = f"""
        from lab_shared.cli import run_cli
        from lab_shared.rundir import RunDir
        run_cli(lambda: RunDir.open({str(run.path)!r}))
    """
    r = _py(code)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: run folder {run.path} is in use by pid {os.getpid()}"
    assert (run.path / ".lock").read_text().strip() == str(os.getpid())
    assert RunDir.open(run.path).path == run.path  # the holder itself may reopen it
    r = _py(  # other DDP ranks use rank 0's folder without locking it
        f"from lab_shared.rundir import RunDir; RunDir.open({str(run.path)!r}); print('ok')",
        env={**os.environ, "RANK": "1"},
    )
    assert r.returncode == 0, r.stderr


def test_unlocked_folder_opens_in_another_process(tmp_path):
    path = tmp_path / "old-run"
    path.mkdir()
    r = _py(f"from lab_shared.rundir import RunDir; RunDir.open({str(path)!r}); print('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_names_created_in_the_same_second_do_not_collide(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: RunDir.create("t", "same", root=tmp_path).path, range(24)))
    assert len(set(runs)) == 24 and all(p.is_dir() for p in runs)


def test_provenance_record(tmp_path):
    data_file = tmp_path / "in.bin"
    data_file.write_bytes(b"abc")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "meta.json").write_text('{"games": 3}')
    cfg = Cfg(data=Path(os.path.relpath(folder)))
    run = RunDir.create("t", "p", cfg, root=tmp_path, inputs=[data_file, folder, None])
    rec = read_json(run.path / "provenance.json")
    assert rec["config"]["data"] == str(folder.absolute())  # paths stored absolute
    assert read_json(run.path / "config.json")["data"] == str(folder.absolute())
    assert rec["config"]["trainer"]["lr"] == TrainerConfig().lr
    sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert rec["inputs"][str(data_file.absolute())] == sha_abc
    assert rec["inputs"][str(folder.absolute())].startswith("meta:")
    assert {"python", "torch", "numpy", "lab-shared"} <= set(rec["packages"])
    assert rec["torch"]["version"] == torch.__version__ and "cuda" in rec["torch"]
    assert rec["git"] is None or (len(rec["git"]["commit"]) == 40 and isinstance(rec["git"]["dirty"], bool))
    assert rec["host"] and rec["argv"] == sys.argv and rec["started"] and rec["ended"] is None
    assert rec["resumes"] == []
    run.write_results({"acc": 1.0})
    assert read_json(run.path / "provenance.json")["ended"] is not None
    # a cache added inside a data folder does not change its identity
    (folder / "cache-blocks.npy").write_bytes(b"x" * 10)
    assert provenance.hash_input(folder) == rec["inputs"][str(folder.absolute())]


def test_secrets_on_the_command_line_never_reach_provenance(tmp_path, monkeypatch):
    argv = [
        "lab",
        "sched",
        "pg",
        "bench",
        "--dsn",
        "host=h password=hunter2 user=u",
        "postgresql://u:pw9@h/db",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    run = RunDir.create("t", "s", {"a": 1}, root=tmp_path)
    RunDir.resume(run.path, {"a": 1})
    text = (run.path / "provenance.json").read_text()
    assert "hunter2" not in text and "pw9" not in text and "password=***" in text


def test_resume_mismatch_refused_and_force_recorded(tmp_path):
    data_file = tmp_path / "in.bin"
    data_file.write_bytes(b"abc")
    cfg = load_config(Cfg, None, ["trainer.lr=0.001"])
    run = RunDir.create("t", "r", cfg, root=tmp_path, inputs=[data_file])
    RunDir.resume(run.path, cfg, inputs=[data_file])  # same settings: fine
    changed = load_config(Cfg, None, ["trainer.lr=0.01", "trainer.max_steps=7"])
    with pytest.raises(LabError) as e:
        RunDir.resume(run.path, changed, inputs=[data_file])
    msg = str(e.value)
    assert "trainer.lr (0.001 -> 0.01)" in msg and "trainer.max_steps" in msg and "--force" in msg
    assert "\n" not in msg
    assert read_json(run.path / "config.json")["trainer"]["lr"] == 0.001  # nothing rewritten
    data_file.write_bytes(b"abd")
    with pytest.raises(LabError, match="inputs differ: .*in.bin"):
        RunDir.resume(run.path, cfg, inputs=[data_file])
    # allowed keys may change without --force
    longer = load_config(Cfg, None, ["trainer.lr=0.001", "trainer.max_steps=9"])
    RunDir.resume(run.path, longer, allow=("trainer.max_steps",))
    keys = RunDir.resume(run.path, changed, inputs=[data_file], force=True).read_provenance()
    assert keys["config"]["trainer"]["lr"] == 0.01
    assert read_json(run.path / "config.json")["trainer"]["lr"] == 0.01
    forced = keys["resumes"][-1]
    assert forced["forced"] is True and "trainer.lr" in forced["changed"]
    assert forced["changed_inputs"] == [str(data_file)]
    assert [r["forced"] for r in keys["resumes"]] == [False, False, True]
    assert keys["resumes"][1]["changed"] == ["trainer.max_steps"]
    RunDir.resume(run.path, changed, inputs=[data_file])  # the record now holds the new settings


def test_resume_may_change_logging_only_settings(tmp_path):
    run = RunDir.create("t", "r", {"trainer": {"lr": 0.1, "progress": True}}, root=tmp_path)
    newer = {"trainer": {"lr": 0.1, "progress": False, "tensorboard": True, "mlflow": True}}
    assert RunDir.resume(run.path, newer).read_provenance()["config"]["trainer"]["tensorboard"] is True
    with pytest.raises(LabError, match="trainer.lr"):
        RunDir.resume(run.path, {"trainer": {"lr": 0.2, "progress": False, "tensorboard": True}})


def test_resume_of_a_folder_without_provenance_uses_config_json(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    atomic_write_json(path / "config.json", {"a": 1, "b": {"c": 2}})
    with pytest.raises(LabError, match=r"b\.c \(2 -> 3\)"):
        RunDir.resume(path, {"a": 1, "b": {"c": 3}})
    run = RunDir.resume(path, {"a": 1, "b": {"c": 2}})
    assert run.read_provenance()["resumes"][0]["forced"] is False


def test_temp_leftovers_cleaned_on_open(tmp_path):
    run = RunDir.create("t", "c", root=tmp_path)
    (run.checkpoints / ".tmp-abc123").mkdir()
    (run.checkpoints / ".tmp-abc123" / "model.safetensors").write_bytes(b"half")
    (run.path / ".results.json.k2j4h_x9.tmp.json").write_text("{")
    (run.plots / ".loss.png.abcdefgh.tmp.png").write_bytes(b"")
    (run.path / ".keep.me").write_text("user file")
    code = f"""
        from lab_shared.rundir import RunDir
        RunDir.open({str(run.path)!r})
    """
    os.close(__import__("lab_shared.rundir").rundir._held.pop(str(run.path.resolve())))  # release our lock
    r = _py(code)
    assert r.returncode == 0, r.stderr
    left = sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*"))
    assert left == [".keep.me", ".lock", "checkpoints", "plots", "provenance.json"]


def test_files_and_folders_respect_the_umask(tmp_path):
    masks = (("022", 0o644, 0o755), ("027", 0o640, 0o750), ("077", 0o600, 0o700))
    code = f"""
        import os, torch
        from lab_shared.rundir import RunDir
        from lab_shared.io import atomic_write_text, save_tensors
        from lab_shared.checkpoint import save_checkpoint
        for mask in {[m for m, _, _ in masks]!r}:  # one process, the umask changed before each run folder
            os.umask(int(mask, 8))
            run = RunDir.create("t", "u", {{"a": 1}}, root={str(tmp_path)!r} + "/" + mask)
            atomic_write_text(run.path / "x.txt", "hi")
            save_tensors({{"w": torch.ones(2)}}, run.path / "w.safetensors")
            save_checkpoint(run.checkpoints, 3, torch.nn.Linear(2, 2), None, {{}})
            print(run.path)
    """
    r = _py(code)
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split()
    assert len(paths) == len(masks)
    for (mask, fmode, dmode), path in zip(masks, paths, strict=True):
        run = Path(path)
        assert run.parent.parent.name == mask
        for name in ("x.txt", "w.safetensors", "config.json", "provenance.json"):
            assert stat.S_IMODE((run / name).stat().st_mode) == fmode, (mask, name)
        ck = run / "checkpoints" / "step-00000003"
        assert stat.S_IMODE(ck.stat().st_mode) == dmode, mask
        assert stat.S_IMODE((ck / "model.safetensors").stat().st_mode) == fmode
        assert stat.S_IMODE(run.stat().st_mode) == dmode


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return TensorData(x, (x[:, 0] > 0).long())


def _loss(m, b):
    return nn.functional.cross_entropy(m(b[0]), b[1])


def test_metrics_rows_after_the_checkpoint_are_not_duplicated_on_resume(tmp_path):
    cfg = TrainerConfig(max_steps=20, batch_size=8, log_every=1, ckpt_every=10, keep_checkpoints=5,
                        progress=False, device="cpu", lr=0.01)  # fmt: skip
    torch.manual_seed(0)
    run = RunDir.create("t", "m", root=tmp_path)
    Trainer(nn.Linear(4, 2), _loss, _problem(), cfg, run_dir=run).fit()
    # a crash after step 20's rows were logged but before its checkpoint: rows 11..20 come again
    import shutil

    shutil.rmtree(run.checkpoints / "step-00000020")
    atomic_write_text(run.checkpoints / "latest", "step-00000010\n")
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "lo')  # and a torn last line
    torch.manual_seed(0)
    Trainer(nn.Linear(4, 2), _loss, _problem(), cfg, run_dir=run).fit(resume="auto")
    steps = [r["step"] for r in read_metrics(run.path / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 21))
    assert all(json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines())


@pytest.mark.parametrize(
    "override, key",
    [
        ("lr=nan", "trainer.lr"),
        ("lr=inf", "trainer.lr"),
        ("lr=0", "trainer.lr"),
        ("max_steps=0", "trainer.max_steps"),
        ("batch_size=0", "trainer.batch_size"),
        ("grad_accum=0", "trainer.grad_accum"),
        ("log_every=0", "trainer.log_every"),
        ("warmup_steps=-1", "trainer.warmup_steps"),
        ("grad_clip=nan", "trainer.grad_clip"),
        ("weight_decay=-0.1", "trainer.weight_decay"),
        ("beta2=1", "trainer.beta2"),
        ("keep_checkpoints=0", "trainer.keep_checkpoints"),
    ],
)
def test_trainer_ranges_name_the_key(override, key):
    cfg = load_config(TrainerConfig, None, [override])
    with pytest.raises(ConfigError, match=f"^{key} must"):
        cfg.validate()
    assert not math.isnan(TrainerConfig().lr)


def test_os_error_is_one_line_at_the_cli_boundary(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = subprocess.run(
        [sys.executable, "-m", "lab_shared.cli", "demo", "--out", str(blocker / "out"), "--only", "sfa"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: Not a directory: {blocker / 'out'}"
    code = f"""
        from lab_shared.cli import run_cli
        from lab_shared.rundir import RunDir
        run_cli(lambda: RunDir.create("t", "x", root={str(blocker)!r}))
    """
    r = _py(code)
    assert r.returncode == 2 and r.stderr == f"error: Not a directory: {blocker / 't'}\n"
    # a read-only place (also as root): /proc
    code = """
        from lab_shared.cli import run_cli
        from lab_shared.io import atomic_write_json
        run_cli(lambda: atomic_write_json("/proc/lab-test/x.json", {}))
    """
    r = _py(code)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "/proc/lab-test" in r.stderr and "Traceback" not in r.stderr


def test_keyboard_interrupt_outside_a_job_is_one_line():
    r = _py("from lab_shared.cli import run_cli\ndef f(): raise KeyboardInterrupt\nrun_cli(f)")
    assert r.returncode == 130 and r.stderr == "interrupted\n"

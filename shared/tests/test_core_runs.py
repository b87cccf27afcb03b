"""`lab runs ls | show | compare` over real run folders made by RunDir (status, provenance, --json, errors)."""

import json
import subprocess
import sys
from dataclasses import dataclass, field

from typer.testing import CliRunner

from lab_shared import provenance
from lab_shared.cli import app
from lab_shared.io import atomic_write_json
from lab_shared.rundir import RunDir

runner = CliRunner()


@dataclass
class Opt:
    lr: float = 0.1
    steps: int = 10


@dataclass
class Cfg:
    method: str = "sfa"
    seed: int = 0
    opt: Opt = field(default_factory=Opt)


def _make_runs(root):
    """Two finished runs that differ in method and opt.lr, one running (lock held here), one stopped."""
    a = RunDir.create("train", "a", Cfg(), root=root)
    a.write_results({"acc": 0.5, "loss": 1.25, "table": [1, 2], "per_task": {"t1": 0.4}})
    b = RunDir.create("train", "b", Cfg(method="seq", opt=Opt(lr=0.01)), root=root)
    b.write_results({"acc": 0.75, "loss": 1.0})
    running = RunDir.create("train", "live", Cfg(), root=root)  # this process holds its lock
    stopped = root / "demo" / "sched" / "train" / "old-1"  # deeper, as the demo's runs are; no lock
    stopped.mkdir(parents=True)
    atomic_write_json(stopped / "config.json", {"method": "seq"})
    atomic_write_json(stopped / provenance.FILE, provenance.new_record({"method": "seq"}))
    return a, b, running, stopped


def test_ls_status_and_json(tmp_path):
    a, b, running, stopped = _make_runs(tmp_path)
    out = runner.invoke(app, ["runs", "ls", "--root", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.output)}
    assert rows[a.path.name]["status"] == "finished"
    assert rows[running.path.name]["status"] == "running"
    assert rows["old-1"]["status"] == "stopped"
    assert rows["old-1"]["command"] == "demo/sched/train"
    assert rows[a.path.name]["command"] == "train"
    assert rows[a.path.name]["metrics"] == {"acc": 0.5, "loss": 1.25, "per_task.t1": 0.4}
    assert rows[a.path.name]["started"] and rows[a.path.name]["ended"]
    text = runner.invoke(app, ["runs", "ls", "--root", str(tmp_path)])
    assert text.exit_code == 0
    line = next(ln for ln in text.output.splitlines() if a.path.name in ln)
    assert "finished" in line and "acc=0.5" in line


def test_ls_reads_lab_runs(tmp_path, monkeypatch):
    _make_runs(tmp_path)
    monkeypatch.setenv("LAB_RUNS", str(tmp_path))
    out = runner.invoke(app, ["runs", "ls", "--json"])
    assert out.exit_code == 0 and len(json.loads(out.output)) == 4


def test_show_prints_config_provenance_results(tmp_path):
    a, *_ = _make_runs(tmp_path)
    out = runner.invoke(app, ["runs", "show", a.path.name, "--root", str(tmp_path)])
    assert out.exit_code == 0, out.output
    for text in ("status   finished", "opt.lr = 0.1", "acc = 0.5", "git", "argv"):
        assert text in out.output
    data = json.loads(runner.invoke(app, ["runs", "show", str(a.path), "--json"]).output)
    assert data["config"]["opt"]["lr"] == 0.1
    assert data["results"]["table"] == [1, 2]
    assert data["provenance"]["started"] == a.read_provenance()["started"]
    assert data["provenance"]["argv"] == a.read_provenance()["argv"]


def test_compare_lists_differing_keys_and_metrics(tmp_path):
    a, b, *_ = _make_runs(tmp_path)
    args = ["runs", "compare", a.path.name, b.path.name, "--root", str(tmp_path)]
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert data["config"] == {"method": ["sfa", "seq"], "opt.lr": [0.1, 0.01]}
    assert data["metrics"]["acc"] == [0.5, 0.75]
    assert data["metrics"]["per_task.t1"] == [0.4, None]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "opt.lr" in out.output and "seed" not in out.output  # identical keys are left out
    assert "0.75" in out.output


def test_bad_run_is_one_line(tmp_path):
    _make_runs(tmp_path)
    for argv in (["show", "nope"], ["compare", "a-"], ["ls", "--root", str(tmp_path / "missing")]):
        code = (
            "import sys; from lab_shared.cli import main; sys.argv = ['lab', 'runs', *sys.argv[1:]]; main()"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv, "--root", str(tmp_path)]
            if argv[0] != "ls"
            else [sys.executable, "-c", code, *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (argv, proc.stderr)
        assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr

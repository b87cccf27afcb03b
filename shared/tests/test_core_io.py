import json

import pytest
import torch

from lab_shared.errors import LabError
from lab_shared.io import atomic_path, atomic_write_json, load_tensors, read_json, save_tensors
from lab_shared.metrics import read_metrics
from lab_shared.report import Section, markdown_table, write_index, write_table
from lab_shared.rundir import RunDir


def test_failed_write_keeps_old_file(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_json(p, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text('{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert read_json(p) == {"a": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_corrupt_files_are_lab_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LabError, match="corrupt JSON"):
        read_json(tmp_path / "bad.json")
    save_tensors({"w": torch.ones(3)}, tmp_path / "t.safetensors")
    data = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LabError, match="corrupt safetensors"):
        load_tensors(tmp_path / "t.safetensors")


def test_rundir_layout_and_metrics(tmp_path):
    run = RunDir.create("demo", "x", config={"a": 1}, root=tmp_path)
    assert run.path.parent == tmp_path / "demo" and run.path.name.startswith("x-")
    assert (run.path / "plots").is_dir() and (run.path / "checkpoints").is_dir()
    assert json.loads((run.path / "config.json").read_text()) == {"a": 1}
    run.metrics.log(step=1, loss=0.5)
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "lo')  # a writer killed mid-line
    rows = read_metrics(run.path / "metrics.jsonl")
    assert len(rows) == 1 and rows[0]["loss"] == 0.5
    run.write_results({"acc": 0.9})
    assert RunDir.open(run.path).read_results() == {"acc": 0.9}
    assert RunDir.create("demo", "x", root=tmp_path).path != run.path


def test_tables_and_index(tmp_path):
    rows = [{"method": "sfa", "acc": 0.81234}, {"method": "seq", "acc": 0.5}]
    assert "| sfa | 0.812 |" in markdown_table(rows)
    md, cs = write_table(rows, tmp_path / "t")
    assert cs.read_text().splitlines()[0] == "method,acc"
    from lab_shared.report import line_plot

    png = line_plot(tmp_path / "p.png", {"a": ([0, 1], [1, 2])}, "x", "y", hlines={"max": 1.5})
    assert png.read_bytes()[:4] == b"\x89PNG"
    page = write_index(tmp_path / "index.html", "t", [Section("S", "txt", [("cap", rows)], [png])])
    text = page.read_text()
    assert "<td>sfa</td>" in text and 'src="p.png"' in text

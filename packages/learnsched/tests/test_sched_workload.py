"""Workload files, episode generation, drift, traces and bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.workload import load_trace, save_trace, workload_from_dict
from lab_learnsched.workload_sources import load_workload
from lab_shared.errors import LabError

LAB = str(Path(sys.executable).parent / "lab")

GOOD = """
[workload]
queries = 6
buffer_pages = 10
queue_size = 3
[tables]
a = 40
b = 20
[templates.r]
parts = [{table = "a", kind = "range", pages = [3, 5], region = [0.5, 1.0]}]
[templates.j]
weight = 2
parts = [{table = "a", kind = "index", pages = 4}, {table = "b", kind = "scan"}]
"""


def test_builtins_and_determinism():
    for name in ("default", "drift", "small"):
        wl = load_workload(name)
        a, b, c = wl.generate(7), wl.generate(7), wl.generate(8)
        assert len(a) == wl.queries
        assert all(np.array_equal(x.pages, y.pages) and x.template == y.template for x, y in zip(a, b))
        assert any(not np.array_equal(x.pages, y.pages) for x, y in zip(a, c))
        for q in a:
            for t, blocks in q.blocks.items():
                assert blocks.min() >= 0 and blocks.max() < wl.tables.size(t)


def test_template_kinds(tmp_path):
    p = tmp_path / "w.toml"
    p.write_text(GOOD)
    wl = load_workload(p)
    assert wl.templates["j"].kind == "join" and wl.templates["r"].kind == "range"
    for q in wl.generate(0, n=50):
        if q.template == "r":
            b = q.blocks["a"]
            assert 3 <= len(b) <= 5 and np.all(np.diff(b) == 1) and b.min() >= 20
        else:
            assert len(q.blocks["a"]) == 4 and np.array_equal(q.blocks["b"], np.arange(20))
            assert q.pages.max() >= 40  # table b lives after table a in global page ids


def test_drift_changes_template_mix():
    wl = load_workload("drift")
    qs = [q for s in range(20) for q in wl.generate(s)]
    early = {q.template for q in qs if q.qid < wl.drift_at}
    late = {q.template for q in qs if q.qid >= wl.drift_at}
    assert "archive_orders" in late and "archive_orders" not in early
    assert "recent_orders" in early and "recent_orders" not in late


def test_poisson_arrivals_increase():
    wl = load_workload("default").with_updates(arrival="poisson", rate=0.01)
    arr = [q.arrival for q in wl.generate(3)]
    assert arr[0] == 0.0 and all(b >= a for a, b in zip(arr, arr[1:])) and arr[-1] > 0


def test_trace_round_trip(tmp_path):
    wl = load_workload("small")
    qs = wl.generate(1)
    path = save_trace(tmp_path / "t.json", wl.tables, qs)
    tables, back = load_trace(path)
    assert tables == wl.tables
    assert all(np.array_equal(a.pages, b.pages) for a, b in zip(qs, back))
    tw = load_workload(path)  # a trace replays as a workload
    ep = tw.generate(0, n=4)
    assert len(ep) == 4 and ep[0].arrival == 0.0


@pytest.mark.parametrize(
    "text,msg",
    [
        (GOOD.replace('table = "b", kind = "scan"', 'table = "zz", kind = "scan"'), "unknown table"),
        (GOOD.replace("a = 40", "a = -40"), "positive integer"),
        (GOOD.replace("pages = [3, 5]", "pages = [-3, 5]"), "positive"),
        (GOOD + "\n[tables]\nc = 3\n", "bad TOML"),  # a table section defined twice
        (GOOD.replace("[templates.r]", "[templates.r\n"), "bad TOML"),
        (GOOD.replace("queries = 6", "queries = 0"), "queries"),
        (GOOD.replace('kind = "range"', 'kind = "zigzag"'), "kind"),
        (GOOD.replace("region = [0.5, 1.0]", "region = [0.9, 0.2]"), "region"),
    ],
)
def test_bad_workload_files(tmp_path, text, msg):
    p = tmp_path / "w.toml"
    p.write_text(text)
    with pytest.raises(LabError, match=msg):
        load_workload(p)


def test_json_duplicate_definitions(tmp_path):
    p = tmp_path / "w.json"
    p.write_text('{"tables": {"a": 10, "a": 20}, "templates": {"t": {"parts": [{"table": "a"}]}}}')
    with pytest.raises(LabError, match="defined twice"):
        load_workload(p)
    d = {"tables": {"a": 10}, "templates": {"t": {"parts": [{"table": "a"}]}}}
    p.write_text(json.dumps(d))
    assert load_workload(p).tables.n_pages == 10
    with pytest.raises(LabError):
        workload_from_dict({**d, "bogus": 1})


def test_buffer_larger_than_data_is_an_error():
    with pytest.raises(LabError, match="holds all"):
        BufferPoolEnv("small", buffer_pages=96)


def test_cli_bad_input_one_line_exit_2(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[tables\n")
    r = subprocess.run([LAB, "sched", "workload", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error:")
    r = subprocess.run([LAB, "sched", "workload", "small", "--episodes", "2"], capture_output=True, text=True)
    assert r.returncode == 0 and "a_hot" in r.stdout

"""The core of `lab report`: numbers as papers print them, one line per bad run folder or failing part,
provenance rows with links, and no import of any package from the core."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from lab_shared.report import Section, Verdict, integer, interval, mean_ci, pct, sig, signed
from lab_shared.report_html import _section, build_report, check_run, config_hash, provenance_row
from lab_shared.rundir import RunDir
from lab_shared.runs import find_runs, load_run

CORE = Path(__file__).resolve().parents[1] / "src" / "lab_shared"


def test_numbers_read_like_a_paper():
    assert sig(1232.090) == "1232" and integer(1232.090) == "1232"
    assert sig(1600.0) == "1600" and "e" not in sig(1.6e3)
    assert sig(752.167) == "752" and integer(790962.4, sep=True) == "790,962"
    assert sig(0.012345) == "0.0123" and sig(0.5) == "0.500" and sig(0) == "0"
    assert sig(-0.0562) == "\u22120.0562" and signed(sig(0.0275)) == "+0.0275"
    assert pct(0.0241) == "+2.4%" and pct(-0.013) == "\u22121.3%" and pct(0.32, 0, False) == "32%"
    assert interval(-430.2, -163.4, integer) == "[\u2212430, \u2212163]"
    assert sig(float("nan")) == "n/a" and sig(None) == "n/a"
    m, lo, hi = mean_ci([0.1, 0.2, 0.3])
    assert abs(m - 0.2) < 1e-12 and lo < 0.2 < hi and abs((hi - lo) / 2 - 4.303 * 0.1 / 3**0.5) < 1e-9


def _run(root: Path, name: str, results: dict | None) -> Path:
    run = RunDir.create("toy", name, {"x": 1, "name": name}, root=root)
    if results is not None:
        run.write_results(results)
    return run.path


def test_missing_and_corrupt_folders_are_one_line(tmp_path):
    good = _run(tmp_path / "runs", "good", {"acc": 0.5})
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "provenance.json").write_text('{"started": ')
    plain = tmp_path / "plain"
    plain.mkdir()
    assert check_run(tmp_path / "nope").startswith("run folder not found: ")
    assert check_run(torn).startswith("corrupt provenance.json in ")
    assert check_run(plain).startswith("not a run folder")
    assert not isinstance(check_run(good), str)
    out = build_report([good, tmp_path / "nope", torn], tmp_path / "page" / "index.html")
    page = out.index.read_text()
    assert len(out.problems) == 2 and all("\n" not in p for p in out.problems)
    assert "run folder not found" in page and "corrupt provenance.json" in page and "Traceback" not in page
    # the toy run belongs to no part: its scalars on the page, with a link to its folder
    assert 'href="../runs/toy/' in page and "No report section" in page


def test_a_failing_section_is_one_line(tmp_path):
    run = load_run(_run(tmp_path, "r", {"acc": 0.5}))

    class Broken:
        TITLE = "Broken part"

        def section(self, runs, fig_dir):
            raise KeyError("acc_ci")

    problems: list[str] = []
    sec = _section("broken", Broken(), [run], tmp_path / "figs", problems)
    assert not sec.ok and sec.title == "Broken part"
    assert problems == ["broken: the report section failed: KeyError: 'acc_ci'"] and sec.notes == problems


def test_unfinished_run_is_named_not_reported(tmp_path):
    run = load_run(_run(tmp_path, "stopped", None))
    problems: list[str] = []

    class Part:
        def section(self, runs, fig_dir):
            return Section("P", verdicts=[Verdict("Q?", "yes", "1 [0, 2]")])

    sec = _section("p", Part(), [run], tmp_path, problems)
    assert not sec.ok and "no results.json" in problems[0]


def test_provenance_row(tmp_path):
    path = _run(tmp_path / "runs", "p", {"acc": 0.5})
    run = load_run(path)
    row = provenance_row(run, tmp_path)
    assert 'href="runs/toy/' in row["run"] and row["status"] == "finished"
    assert row["config hash"] == config_hash(json.loads((path / "config.json").read_text()))
    assert len(row["config hash"]) == 12 and row["host"] != "-"
    prov = json.loads((path / "provenance.json").read_text())
    if prov.get("git"):
        assert row["commit"].startswith(prov["git"]["commit"][:10])


def test_model_folder_inside_a_run_is_not_a_run(tmp_path):
    path = _run(tmp_path, "train", {"step": 3})
    (path / "model").mkdir()
    (path / "model" / "config.json").write_text("{}")  # an exported model's own config
    assert find_runs(tmp_path) == [path]


def test_core_imports_no_package():
    for f in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            for n in names:
                assert not n.startswith(("lab_sfa", "lab_transcendence", "lab_learnsched")), (f.name, n)


def test_cli_report_missing_run_is_one_line(tmp_path):
    import subprocess
    import sys

    good = _run(tmp_path / "runs", "good", {"acc": 0.5})
    r = subprocess.run(
        [sys.executable, "-m", "lab_shared.cli", "report", str(good), str(tmp_path / "gone"),
         "--out", str(tmp_path / "page" / "index.html")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"lab report: run folder not found: {tmp_path / 'gone'}"]
    assert "results page:" in r.stdout and (tmp_path / "page" / "index.html").is_file()

"""`lab report` in a real browser: Debian's headless Chromium renders the page of real tiny runs (a PPO
scheduler trained a few hundred steps and benched, four SFA runs of a few steps), every <img> must load
(an inline script on the page sets data-images="loaded/total" once the page has loaded; read back from
--dump-dom) and the verdicts must be on it; a missing and a corrupt run folder are one line each."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
)
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (make setup installs it as root)"
)


def render(page: Path, *extra: str) -> str:
    """The DOM of `page` after Chromium loaded it (scripts run, images decoded)."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *extra,
             "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr[-500:]
    return out.stdout


def images_loaded(dom: str) -> tuple[int, int]:
    m = re.search(r'<html[^>]*data-images="(\d+)/(\d+)"', dom)
    assert m, "the page's image check did not run"
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """Real runs, as small as they go: sched train + bench, SFA seq/sfa/l2/replay."""
    from lab_learnsched.demo import run_demo as sched_demo
    from lab_sfa.demo import run_demo as sfa_demo

    root = tmp_path_factory.mktemp("runs")
    sched_demo(root / "sched", steps=256, seeds=2, quick=True)
    sfa_demo(root / "sfa", quick=True)
    return root


def test_report_of_real_runs_renders_in_chromium(tiny_runs, tmp_path, capsys):
    from lab_shared.report_html import build_report

    corrupt = tmp_path / "corrupt-run"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{}")
    (corrupt / "results.json").write_text('{"acc": 0.5')  # torn write
    out = build_report([tiny_runs, tmp_path / "no-such-run", corrupt], tmp_path / "page" / "index.html")
    assert {p.name for p in out.pages} == {"index.html", "sfa.html", "sched.html"}
    assert any("run folder not found" in p and "no-such-run" in p for p in out.problems)
    assert any(p.startswith("corrupt results.json") for p in out.problems)
    err = capsys.readouterr().err
    assert "run folder not found" in err and "Traceback" not in err

    dom = render(out.index)
    loaded, total = images_loaded(dom)
    assert (
        total >= 5 and loaded == total
    )  # SFA bars, curves, heat maps; sched reads vs buffer, learning curve
    for claim in (
        "Does the learned agent read less than the best hand-written rule",
        "Does SFA forget less than sequential fine-tuning",
        "Does SFA match replay without storing any data?",
    ):
        assert claim in dom
    assert "Contents" in dom and "Runs and provenance" in dom and "config hash" in dom
    assert "run folder not found" in dom and "Traceback" not in dom
    assert not re.search(
        r"(?<![\d.])[1-9]\d*\.\d{3,}", re.sub(r"<style>.*?</style>|<script>.*?</script>", "", dom, flags=re.S)
    )
    assert "e+0" not in dom
    # relative links to every run folder, which exist
    links = re.findall(r'href="([^"]+)/"', dom)
    assert links and all((out.index.parent / h).is_dir() for h in links)
    for part in ("sfa.html", "sched.html"):
        loaded, total = images_loaded(render(out.index.parent / part))
        assert total >= 2 and loaded == total


def test_screenshot_is_drawn(tiny_runs, tmp_path):
    from lab_shared.report_html import build_report

    out = build_report([tiny_runs / "sched"], tmp_path / "index.html")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--hide-scrollbars",
             "--window-size=1000,1400", f"--screenshot={shot}", out.index.resolve().as_uri()],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

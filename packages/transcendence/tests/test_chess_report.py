"""The chess part of `lab report` over the committed 10,000-step CPU run (docs/results/transcend-cpu-10k):
the verdict, Elo as integers with intervals, Figure 1 and the training loss."""

from __future__ import annotations

from pathlib import Path

from lab_shared.report_html import expand
from lab_transcendence import report

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results" / "transcend-cpu-10k"


def test_transcend_verdict_and_figure_from_real_runs(tmp_path):
    runs, problems = expand([RESULTS])
    assert not problems and sorted(r.name for r in runs) == ["train", "transcend"]
    assert all(report.owns(r) for r in runs)
    sec = report.section(runs, tmp_path)
    head = sec.verdicts[0]
    assert head.claim == "Does the model at low temperature beat every expert in its data (transcendence)?"
    assert head.answer == "no"
    for text in ("ML Elo 1598 [1559, 1638]", "expert0 1657 [1611, 1706]", "difference \u221259 [\u221292, \u221225]",
                 "above 3 of 4 experts", "260 confirmation games", "head-to-head score 0.485 over 100 games"):  # fmt: skip
        assert text in head.detail, text
    low_t = sec.verdicts[1]
    assert low_t.answer == "yes" and "(+318)" in low_t.detail
    figs = [Path(getattr(f, "path", f)).name for f in sec.images]
    assert figs[0] == "figure1-transcend.png" and "loss.png" in figs
    assert (tmp_path / "figure1-transcend.png").stat().st_size > 20_000
    pool = dict(sec.tables)["Rating pool (confirmation games)"]
    assert all("." not in r["Elo"] for r in pool) and any(r["player"] == "expert0" for r in pool)

"""The SFA part of `lab report` over the committed paper-regime benchmark (docs/results/sfa-paper-regime)."""

from __future__ import annotations

from pathlib import Path

from lab_sfa import report
from lab_shared.report_html import _section, expand

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results" / "sfa-paper-regime"


def test_paper_regime_claims_as_verdicts(tmp_path):
    runs, problems = expand([RESULTS])
    assert not problems and len(runs) == 1 and report.owns(runs[0])
    bad: list[str] = []
    sec = _section("sfa", report, runs, tmp_path, bad)  # results come from summary.json (results_of)
    assert not bad and sec.ok
    v = {x.claim: x for x in sec.verdicts}
    assert v["SFA > Task Arithmetic?"].answer == "yes"
    assert v["SFA > EWC?"].answer == "no"
    replay = v["SFA ~ replay (about matches a data buffer)?"]
    assert (
        replay.answer == "no: SFA is better"
        and "paper, order 0: +0.073 [0.067, 0.080] (5 seeds" in replay.detail
    )
    assert (tmp_path / "paper-acc-sfa-paper-regime.png").stat().st_size > 20_000
    ((caption, rows),) = sec.tables
    sfa = next(r for r in rows if r["method"] == "sfa")
    assert (
        sfa["ACC"] == "0.780" and sfa["95% interval"] == "[0.777, 0.784]" and sfa["extra param copies"] == "1"
    )

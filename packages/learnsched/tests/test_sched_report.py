"""The scheduling part of `lab report` over the committed run folders of docs/results/sched-families/ppo
(a set agent trained 716,800 steps, its built-in bench and the held-out/seen family benches)."""

from __future__ import annotations

from pathlib import Path

from lab_learnsched import report
from lab_shared.report_html import expand

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results" / "sched-families" / "ppo"


def test_family_and_bench_verdicts_from_real_runs(tmp_path):
    runs, problems = expand([RESULTS])
    assert not problems and {r.name for r in runs} >= {"train", "builtins", "heldout", "seen"}
    assert all(report.owns(r) for r in runs)
    sec = report.section(runs, tmp_path)
    claims = {v.claim: v for v in sec.verdicts}
    unseen = claims["Does one learned agent read less than the best hand-written rule on workload families it never trained on?"]  # fmt: skip
    assert unseen.answer == "no, not distinguishable"
    assert "+0.3% reads (95% bootstrap interval \u22121.5% .. +1.9%) over 150 episodes" in unseen.detail
    default = next(v for c, v in claims.items() if c.endswith("on 'default'?"))
    assert default.answer == "yes" and "1,444 vs 1,464 reads" in default.detail
    names = sorted(Path(getattr(f, "path", f)).name for f in sec.images)
    assert names == ["families-heldout.png", "families-seen.png", "learning_curve-train.png"]
    assert all((tmp_path / n).stat().st_size > 10_000 for n in names)
    table = dict(sec.tables)["All families of heldout together"]
    assert any(r["policy"] == "agent:setnet-families-20261201-205508" for r in table)


def test_exact_pool_that_holds_the_batch_is_a_note():
    from lab_shared.runs import Run

    rows = [{"buffer": b, "policy": p, "reads": 752.2, "optimum_reads": 752.2, "gap_opt": g, "gap_opt_max": g,
             "at_optimum": 1.0 if g == 0 else 0.5} for b, g in ((800, 0.0), (300, 0.0), (300, 0.02)) for p in ("fifo",)]  # fmt: skip
    run = Run(Path("x"), "bench", "x", "finished", None, None, results={"exact": rows})
    kept, notes = report.exact_table(run)
    assert [r["pool"] for r in kept] == [300, 300] and kept[0]["reads"] == "752"
    assert len(notes) == 1 and "pool of 800 pages every order" in notes[0]

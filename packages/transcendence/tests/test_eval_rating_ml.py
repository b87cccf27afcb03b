"""The maximum-likelihood rating against fixed anchors, beside the one-period Glicko-2 rating."""

import json
import math
import random

import pytest

from lab_transcendence.rating import rate_records
from lab_transcendence.transcend import EvalConfig, report, verdict_line


def _rec(white, black, result, i=0):
    return {
        "game_id": f"{white}-{black}-{i}",
        "white": white,
        "black": black,
        "result": result,
        "termination": "checkmate",
        "plies": 40,
        "illegal": {"white": 0, "black": 0},
    }


def _record(player, opp, scores):
    """Games of `player` against `opp` with the given scores, colours alternating."""
    out = []
    for i, s in enumerate(scores):
        res = {1.0: "1-0", 0.5: "1/2-1/2", 0.0: "0-1"}[s]
        if i % 2:  # player has black: flip the result
            res = {"1-0": "0-1", "0-1": "1-0"}.get(res, res)
            out.append(_rec(opp, player, res, i))
        else:
            out.append(_rec(player, opp, res, i))
    return out


def test_one_win_in_40_is_rated_far_below_one_glicko_period():
    opp = {"sf1": (1554.0, 0.0)}
    r = rate_records(_record("m", "sf1", [1.0] + [0.0] * 39), "m", opp)
    assert (r["wins"], r["losses"]) == (1, 39)
    # one Glicko-2 period barely leaves the prior; the likelihood's maximum is 1554 - 400 log10(39) = 918
    assert r["rating"] > 1200 and r["ml_rating"] < r["rating"] - 250
    assert r["ml_rating"] == pytest.approx(1554 - 400 * math.log10(39), abs=30)
    assert 100 < r["ml_se"] < 250
    # and it separates weak records that one period squeezes together
    r2 = rate_records(_record("m", "sf1", [1.0, 1.0] + [0.0] * 38), "m", opp)
    assert r2["ml_rating"] - r["ml_rating"] > 3 * (r2["rating"] - r["rating"])


def test_half_score_against_one_anchor_gives_its_rating():
    opp = {"sf1": (1554.0, 0.0)}
    r = rate_records(_record("m", "sf1", [1.0, 0.0] * 10 + [0.5] * 20), "m", opp)
    assert r["score"] == 0.5
    assert r["ml_rating"] == pytest.approx(1554.0, abs=1.0)
    # Fisher information of 40 games at p = 1/2: SE = (400 / ln 10) / sqrt(40 / 4)
    assert r["ml_se"] == pytest.approx(400 / math.log(10) / math.sqrt(10), rel=0.02)


def test_ml_rating_is_order_free():
    opp = {"sf1": (1554.0, 0.0), "sf3": (1867.0, 30.0)}
    recs = _record("m", "sf1", [1.0, 0.5, 0.0, 0.0, 1.0, 0.0]) + _record("m", "sf3", [0.0, 0.5, 0.0, 1.0])
    recs = [r | {"game_id": f"{r['game_id']}-{j}"} for j, r in enumerate(recs)]
    base = rate_records(recs, "m", opp)
    for seed in range(3):
        shuffled = list(recs)
        random.Random(seed).shuffle(shuffled)
        r = rate_records(shuffled, "m", opp)
        assert r["ml_rating"] == pytest.approx(base["ml_rating"], abs=1e-6)
        assert r["ml_se"] == pytest.approx(base["ml_se"], abs=1e-6)


def test_no_scored_games_has_no_ml_rating():
    r = rate_records([_rec("m", "sf1", "*")], "m", {"sf1": (1554.0, 0.0)})
    assert r["games"] == 0 and math.isnan(r["ml_rating"]) and math.isnan(r["ml_se"])


class _Run:
    def __init__(self, root):
        self.root = root
        self.plots = root / "plots"
        self.plots.mkdir()

    def file(self, name):
        return self.root / name

    def write_results(self, res):
        (self.root / "results.json").write_text(json.dumps(res, default=str))


def test_report_gives_ml_columns_and_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr("lab_transcendence.arena.write_pgn", lambda records, path, **kw: path)
    monkeypatch.setattr("lab_shared.report.line_plot", lambda path, *a, **kw: path)
    opp = {"sf1": (1554.0, 0.0)}
    low, high = "m@T0.001/masked", "m@T1/masked"
    records = (
        _record(low, "sf1", [1.0] + [0.0] * 19)
        + _record(high, "sf1", [0.0] * 20)
        + _record("expert0", "sf1", [1.0] * 6 + [0.0] * 14)
    )
    rated = [
        {"kind": "model", "name": low, "model": "m", "policy": "masked", "temperature": 0.001},
        {"kind": "model", "name": high, "model": "m", "policy": "masked", "temperature": 1.0},
        {"kind": "expert", "name": "expert0", "data_rating": None},
    ]
    cfg = EvalConfig(models=["m"], temperatures=[0.001, 1.0], policies=["masked"], levels=[1])
    res = report(cfg, _Run(tmp_path), records, rated, opp, [("m", "m", None, None, {})], 0)
    rows = {r["player"]: r for r in res["ratings"]}
    assert all("ml_rating" in t and "ml_se" in t for t in res["table"])
    assert rows[low]["ml_rating"] < rows[low]["rating"]
    assert rows[high]["ml_rating"] < rows[low]["ml_rating"] < rows["expert0"]["ml_rating"]
    (v,) = res["verdicts"]
    assert v["ml_best_T"] == 0.001 and v["ml_best_rating"] == rows[low]["ml_rating"]
    assert v["ml_reference_rating"] == rows["expert0"]["ml_rating"] and v["ml_transcends"] == "no"
    assert v["transcends"] == "no"  # the Glicko-2 verdict is still there
    line = res["summary"][0]
    assert "Glicko-2 (one period)" in line and "Maximum likelihood" in line
    assert verdict_line(v) == line
    assert "ml_rating" in (tmp_path / "transcendence.csv").read_text().splitlines()[0]

"""Anchors, rating of game records, and the calibration fit."""

import json

import pytest

from lab_shared.errors import LabError
from lab_transcendence.rating import PAPER_ANCHORS, fit_anchors, load_anchors, parse_levels, rate_records


def _rec(white, black, result, term="checkmate"):
    return {
        "game_id": f"{white}-{black}-{result}",
        "white": white,
        "black": black,
        "result": result,
        "termination": term,
        "plies": 40,
        "illegal": {"white": 0, "black": 0},
    }


def test_anchor_files(tmp_path):
    assert load_anchors(None)[3] == (PAPER_ANCHORS[3], 0.0)
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"anchors": {"1": {"rating": 1400, "rd": 20}, "3": {"rating": 1700}}}))
    assert load_anchors(p) == {1: (1400.0, 20.0), 3: (1700.0, 0.0)}
    p.write_text(json.dumps({"1": 1500}))
    assert load_anchors(p) == {1: (1500.0, 0.0)}
    p.write_text(json.dumps({"x": "y"}))
    with pytest.raises(LabError):
        load_anchors(p)
    with pytest.raises(LabError):
        parse_levels("1,30")


def test_rate_records_counts_and_methods():
    opp = {"sf1": (1554.0, 0.0), "sf3": (1867.0, 0.0)}
    recs = [
        _rec("m", "sf1", "1-0"),
        _rec("sf1", "m", "1/2-1/2"),
        _rec("m", "sf3", "0-1", "forfeit"),
        _rec("sf3", "m", "1-0"),
        _rec("m", "sf1", "*", "error"),
        _rec("x", "sf1", "1-0"),
    ]
    r = rate_records(recs, "m", opp)
    assert (r["games"], r["wins"], r["draws"], r["losses"], r["forfeits"], r["errors"]) == (4, 1, 1, 2, 1, 1)
    assert r["score"] == pytest.approx(1.5 / 4) and 1300 < r["rating"] < 1800 and r["rd"] < 500
    s = rate_records(list(reversed(recs)), "m", opp)
    assert s["rating"] == pytest.approx(r["rating"])  # one rating period: order-free
    q = rate_records(recs, "m", opp, method="sequential")
    assert q["method"] == "sequential" and q["games"] == 4


def test_fit_anchors_recovers_a_spacing():
    recs = []
    # level 5 scores 3/4 against level 1: about +191 Elo
    for i in range(40):
        recs.append(_rec("l5", "l1", "1-0" if i % 4 else "0-1"))
    out = fit_anchors(recs, {1: "l1", 5: "l5"}, pin_level=1, pin_rating=1500)
    assert out[1] == (1500, 0.0)
    assert out[5][0] == pytest.approx(1500 + 191, abs=15) and 30 < out[5][1] < 100

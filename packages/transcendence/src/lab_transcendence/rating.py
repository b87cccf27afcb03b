"""Ratings from game records: Stockfish anchors, Glicko-2 of one player, and anchor calibration.

The model (or an expert) is rated against Stockfish levels whose ratings are fixed anchors (deviation 0),
by Glicko-2 in one rating period and, beside it, by maximum likelihood (Elo's model, a weak prior).
Defaults are the paper's anchors; `calibrate` re-measures them on this machine by a round robin between
levels fitted by maximum likelihood with one level pinned (the levels' spacing depends on the machine
and the move limit, the pin only sets the scale's origin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.io import read_json
from lab_transcendence.arena import score_for
from lab_transcendence.glicko2 import Rating, Result, rate_period, rate_sequential

# The paper's anchor ratings for Stockfish UCI Skill Levels (deviation 0).
PAPER_ANCHORS: dict[int, float] = {1: 1554.0, 2: 1759.0, 3: 1867.0, 4: 2006.0, 5: 2148.0}
# The paper's starting point for a rated model and its system constant.
PAPER_START = Rating(1500.0, 500.0, 0.06)
PAPER_TAU = 0.5
# Prior sd of the maximum-likelihood rating (mean: the start rating): weak, so the fit is essentially
# maximum likelihood; it only decides the value of an all-loss or all-win record (no finite maximum).
ML_PRIOR_SD = 1000.0


def parse_levels(text: str) -> list[int]:
    """`1,3,5` -> [1, 3, 5] (Skill Levels 0..20)."""
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LabError(f"bad Stockfish levels {text!r}: use comma-separated integers like 1,3,5") from None
    if not levels or any(not 0 <= lv <= 20 for lv in levels):
        raise LabError(f"bad Stockfish levels {text!r}: each must be 0..20")
    return levels


def parse_floats(text: str, what: str = "temperatures") -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LabError(f"bad {what} {text!r}: use comma-separated numbers") from None
    if not vals:
        raise LabError(f"no {what} given")
    return vals


def load_anchors(path: str | Path | None) -> dict[int, tuple[float, float]]:
    """Anchors level -> (rating, deviation): the paper's by default, else a JSON file.

    The file is either `lab chess calibrate`'s anchors.json ({"anchors": {"1": {"rating": .., "rd": ..}}})
    or a plain mapping {"1": 1554, "3": 1867}.
    """
    if path is None:
        return {lv: (r, 0.0) for lv, r in PAPER_ANCHORS.items()}
    data = read_json(path)
    data = data.get("anchors", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise LabError(f"{path}: anchors must be a JSON object of level -> rating")
    out = {}
    try:
        for k, v in data.items():
            if isinstance(v, dict):
                out[int(k)] = (float(v["rating"]), float(v.get("rd", 0.0)))
            else:
                out[int(k)] = (float(v), 0.0)
    except (ValueError, KeyError, TypeError):
        raise LabError(f"{path}: anchors must map a level to a rating") from None
    return out


def check_levels(levels: Sequence[int], anchors: dict[int, tuple[float, float]]) -> None:
    missing = [lv for lv in levels if lv not in anchors]
    if missing:
        raise LabError(
            f"no anchor rating for Stockfish level(s) {missing}: pass --anchors FILE (lab chess calibrate)"
        )


def rate_records(
    records: Sequence[dict],
    player: str,
    opponents: dict[str, tuple[float, float]],
    method: str = "period",
    start: Rating = PAPER_START,
    tau: float = PAPER_TAU,
) -> dict:
    """Glicko-2 of `player` from its games against opponents of known (rating, rd).

    method `period` (one rating period, order-free; reported) or `sequential` (the paper's game-by-game
    updates in record order). Also counts wins/draws/losses, forfeits and unscored (error) games, and
    gives `ml_rating` ± `ml_se`: the maximum-likelihood Elo against the opponents' ratings held fixed
    (their deviations ignored; prior N(start rating, ML_PRIOR_SD)), order-free and not one step from the
    prior, so unlike one Glicko-2 period it separates weak players by their score.
    """
    if method not in ("period", "sequential"):
        raise LabError(f"unknown rating method {method!r} (choose period or sequential)")
    results: list[Result] = []
    games: list[tuple[str, str, float]] = []
    w = d = lo = forfeits = errors = 0
    for rec in records:
        if player not in (rec["white"], rec["black"]):
            continue
        opp = rec["black"] if rec["white"] == player else rec["white"]
        if opp not in opponents:
            continue
        s = score_for(rec, player)
        if s is None:
            errors += 1
            continue
        results.append(Result(opponents[opp][0], opponents[opp][1], s))
        games.append((player, opp, s))
        w += s == 1.0
        d += s == 0.5
        lo += s == 0.0
        if rec["termination"] == "forfeit" and s == 0.0:
            forfeits += 1
    rate = rate_period if method == "period" else rate_sequential
    r = rate(start, results, tau)
    n = len(results)
    ml, ml_se = ml_rating(games, player, opponents, prior_mean=start.rating)
    return {
        "rating": r.rating,
        "rd": r.rd,
        "vol": r.vol,
        "ml_rating": ml,
        "ml_se": ml_se,
        "games": n,
        "wins": w,
        "draws": d,
        "losses": lo,
        "score": (w + 0.5 * d) / n if n else float("nan"),
        "forfeits": forfeits,
        "errors": errors,
        "method": method,
    }


def ml_rating(
    games: Sequence[tuple[str, str, float]],
    player: str,
    opponents: dict[str, tuple[float, float]],
    prior_mean: float = PAPER_START.rating,
    prior_sd: float = ML_PRIOR_SD,
) -> tuple[float, float]:
    """(rating, standard error) of `player` by maximum a-posteriori Elo against fixed opponent ratings.

    `games` are (player, opponent, player's score); NaNs when there are none.
    """
    from lab_transcendence.synth import fit_elo

    if not games:
        return float("nan"), float("nan")
    fixed = {name: opponents[name][0] for _, name, _ in games}
    fit = fit_elo(list(games), fixed, prior_mean=prior_mean, prior_sd=prior_sd)
    return fit.ratings[player], fit.se[player]


def fit_anchors(
    records: Sequence[dict], names: dict[int, str], pin_level: int, pin_rating: float
) -> dict[int, tuple[float, float]]:
    """Maximum-likelihood Elo of every level from a round robin, `pin_level` fixed at `pin_rating`."""
    from lab_transcendence.synth import fit_elo

    games = []
    for rec in records:
        s = score_for(rec, rec["white"])
        if s is not None:
            games.append((rec["white"], rec["black"], s))
    if not games:
        raise LabError("no scored games to calibrate from")
    fit = fit_elo(games, {names[pin_level]: pin_rating}, prior_mean=pin_rating, prior_sd=1000.0)
    out = {pin_level: (pin_rating, 0.0)}
    for lv, name in names.items():
        if lv != pin_level:
            out[lv] = (fit.ratings.get(name, float("nan")), fit.se.get(name, float("nan")))
    return dict(sorted(out.items()))


def calibrate(
    run,
    levels: Sequence[int],
    games: int,
    limit: str,
    pin_level: int,
    pin_rating: float,
    engines: int = 2,
    concurrency: int = 8,
    max_moves: int = 89,
    stockfish: str | None = None,
    backend=None,
) -> dict:
    """Round robin between Stockfish levels (colours alternating), then the anchors by maximum likelihood.

    Games go to run/games.jsonl (resumable); anchors.json, crosstable and results.json are written.
    `backend` runs the games (arena_tasks: here on an engine pool, or in chunks on Ray).
    """
    from lab_shared.io import atomic_write_json
    from lab_shared.progress import progress
    from lab_transcendence.arena import EnginePlayer, GameLog, GameSpec, write_pgn
    from lab_transcendence.arena_tasks import play
    from lab_transcendence.engines import level_settings, open_pool

    pool = None if backend is not None and backend.is_ray else open_pool(stockfish, size=engines)
    try:
        players = {}
        names = {}
        for lv in levels:
            p = EnginePlayer(pool, level_settings(lv, limit))
            players[p.name] = p
            names[lv] = p.name
        specs = []
        for i, a in enumerate(levels):
            for b in levels[i + 1 :]:
                for g in range(games):
                    w, bl = (names[a], names[b]) if g % 2 == 0 else (names[b], names[a])
                    specs.append(GameSpec(f"{names[a]}|{names[b]}|{g}", w, bl, round=g + 1))
        log = GameLog(run.file("games.jsonl"))
        bar = progress(total=len(specs) - len(log.done_ids()), desc="calibration games")
        records = play(specs, players, log, backend, concurrency=concurrency, max_moves=max_moves or None,
                       on_game=lambda r: bar.update(1), stockfish=stockfish)  # fmt: skip
        bar.close()
    finally:
        if pool is not None:
            pool.close()
    write_pgn(records, run.file("games.pgn"), event="lab chess calibrate")
    fitted = fit_anchors(records, names, pin_level, pin_rating)
    anchors = {str(k): {"rating": round(r, 1), "rd": round(se, 1)} for k, (r, se) in fitted.items()}
    cross = {}
    for rec in records:
        s = score_for(rec, rec["white"])
        if s is None:
            continue
        for x, y, sx in ((rec["white"], rec["black"], s), (rec["black"], rec["white"], 1 - s)):
            cell = cross.setdefault(x, {}).setdefault(y, [0.0, 0])
            cell[0] += sx
            cell[1] += 1
    atomic_write_json(
        run.file("anchors.json"), {"anchors": anchors, "limit": limit, "pin": [pin_level, pin_rating]}
    )
    res = {"anchors": anchors, "crosstable": cross, "games": len(records), "limit": limit}
    run.write_results(res)
    return res


# ---------------------------------------------------------------- one pool, maximum likelihood, bootstrap


def _pool_arrays(games: Sequence[tuple[str, str, float]], fixed: dict[str, float]):
    import numpy as np

    names = sorted({a for a, _, _ in games} | {b for _, b, _ in games})
    idx = {n: i for i, n in enumerate(names)}
    ia = np.array([idx[a] for a, _, _ in games], dtype=np.int64)
    ib = np.array([idx[b] for _, b, _ in games], dtype=np.int64)
    s = np.array([x for _, _, x in games], dtype=np.float64)
    free = np.array([n not in fixed for n in names])
    r0 = np.array([fixed.get(n, 0.0) for n in names], dtype=np.float64)
    return names, ia, ib, s, free, r0


def _newton(ia, ib, s, w, free, r, prior_mean, prior_sd, iters=100):
    """MAP Elo of the free players (Bradley-Terry on the Elo scale, game weights w) from start r."""
    import numpy as np

    k = math.log(10) / 400
    n = len(r)
    fi = np.flatnonzero(free)
    r = r.copy()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-k * (r[ia] - r[ib])))
        g = np.zeros(n)
        np.add.at(g, ia, w * k * (s - p))
        np.add.at(g, ib, -w * k * (s - p))
        g -= (r - prior_mean) / prior_sd**2
        h = np.zeros((n, n))
        q = w * k * k * p * (1 - p)
        np.add.at(h, (ia, ia), q)
        np.add.at(h, (ib, ib), q)
        np.add.at(h, (ia, ib), -q)
        np.add.at(h, (ib, ia), -q)
        h[np.diag_indices(n)] += 1 / prior_sd**2
        step = np.linalg.solve(h[np.ix_(fi, fi)], g[fi])
        step = np.clip(step, -300, 300)
        r[fi] += step
        if np.abs(step).max() < 1e-4:
            break
    return r


def pool_ml(
    games: Sequence[tuple[str, str, float]],
    fixed: dict[str, float],
    bootstrap: int = 1000,
    seed: int = 0,
    prior_sd: float = ML_PRIOR_SD,
) -> dict:
    """Maximum-likelihood Elo of every player of one pool against the fixed anchors, with 95% intervals.

    `games` are (a, b, score of a), every pair of players may meet. Intervals: percentile bootstrap over
    games (resample the games with replacement, refit; `bootstrap` times). The prior N(mean of the anchors,
    prior_sd^2) is weak: it only keeps an all-win or all-loss record finite. Returns {"ratings": {name:
    elo}, "ci95": {name: [lo, hi]}, "samples": (B, n) array, "names": [...]}; `diff_ci` reads intervals of
    differences from the samples.
    """
    import numpy as np

    if not games:
        return {"ratings": {}, "ci95": {}, "samples": np.zeros((0, 0)), "names": []}
    names, ia, ib, s, free, r0 = _pool_arrays(games, fixed)
    mean = float(np.mean(list(fixed.values()))) if fixed else 1500.0
    r0[free] = mean
    w = np.ones(len(s))
    full = _newton(ia, ib, s, w, free, r0, mean, prior_sd)
    rng = np.random.default_rng(seed)
    samples = np.zeros((bootstrap, len(names)))
    for b in range(bootstrap):
        wb = np.bincount(rng.integers(0, len(s), len(s)), minlength=len(s)).astype(np.float64)
        samples[b] = _newton(ia, ib, s, wb, free, full, mean, prior_sd, iters=30)
    lo, hi = np.percentile(samples, [2.5, 97.5], axis=0) if bootstrap else (full, full)
    return {
        "ratings": {n: float(full[i]) for i, n in enumerate(names)},
        "ci95": {n: [float(lo[i]), float(hi[i])] for i, n in enumerate(names)},
        "samples": samples,
        "names": names,
    }


def diff_ci(fit: dict, a: str, b: str) -> tuple[float, list[float]]:
    """Elo of a minus b and its 95% bootstrap interval (the same resamples for both: paired)."""
    import numpy as np

    i, j = fit["names"].index(a), fit["names"].index(b)
    d = fit["samples"][:, i] - fit["samples"][:, j]
    lo, hi = np.percentile(d, [2.5, 97.5]) if len(d) else (float("nan"), float("nan"))
    return fit["ratings"][a] - fit["ratings"][b], [float(lo), float(hi)]

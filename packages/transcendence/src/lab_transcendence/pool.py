"""The pool design of `lab chess transcend`: one rating pool, a selection set and a confirmation set.

Every player -- each model setting (temperature x policy), every synthetic expert of the model's data, and
a fixed anchor matched to their strength (Stockfish at depth 1 playing a random legal move half the time,
pinned at `anchor_rating`) -- plays every other (model settings do not play each other), colours
alternating. Ratings are one maximum-likelihood Elo fit of the whole pool against the pinned anchor, with
95% percentile-bootstrap intervals over games (rating.pool_ml).

1. Selection set (seed `seed`): all temperatures, `selection_games` a pair. The best setting of each
   model and the best expert are read off it.
2. Confirmation set (fresh seeds, fresh games): the selected setting, the lowest and the highest
   temperature, the experts and the anchor, `confirm_games` a pair, plus head-to-head games of the
   selected setting against the selection's best expert up to `h2h_games`. The verdict is decided here
   only: the model transcends when the 95% interval of (model - expert) lies above 0 for EVERY expert.
3. The per-position measure (position_score.py) on held-out corpus positions, for position models.

Glicko-2 (one period, the paper's start and tau) against the opponents' confirmation ratings is kept as
columns. Game ids carry a hash of the model's weights, so `--resume` never replays one model's games as
another's.
"""

from __future__ import annotations

import math
from pathlib import Path

from lab_shared.errors import LabError

SELECT, CONFIRM = "select", "confirm"
CONFIRM_SEED_OFFSET = 7919  # the confirmation set's games use seed + this: other seeds than selection


def anchor_expert(depth: int, random_rate: float):
    from lab_transcendence.synth import Expert

    return Expert(
        name=f"anchor-d{depth}-r{random_rate:g}", random_rate=random_rate, blind_spot=None, depth=depth
    )


def _score(rec: dict, player: str) -> float | None:
    from lab_transcendence.arena import score_for

    return score_for(rec, player)


def pool_games(records: list[dict]) -> list[tuple[str, str, float]]:
    out = []
    for r in records:
        s = _score(r, r["white"])
        if s is not None:
            out.append((r["white"], r["black"], s))
    return out


def player_summary(records: list[dict], name: str) -> dict:
    w = d = lo = errors = 0
    for r in records:
        if name not in (r["white"], r["black"]):
            continue
        s = _score(r, name)
        if s is None:
            errors += 1
            continue
        w += s == 1.0
        d += s == 0.5
        lo += s == 0.0
    n = w + d + lo
    return {"games": n, "wins": w, "draws": d, "losses": lo, "score": (w + 0.5 * d) / n if n else float("nan"),
            "errors": errors}  # fmt: skip


def glicko_columns(records: list[dict], name: str, ratings: dict[str, float]) -> tuple[float, float, float]:
    """(one-period Glicko-2, its RD, the paper's sequential Glicko-2) against opponents at fixed ratings."""
    from lab_transcendence.glicko2 import Result, rate_period, rate_sequential
    from lab_transcendence.rating import PAPER_START, PAPER_TAU

    res = []
    for r in records:
        if name not in (r["white"], r["black"]):
            continue
        opp = r["black"] if r["white"] == name else r["white"]
        s = _score(r, name)
        if s is not None and opp in ratings:
            res.append(Result(ratings[opp], 0.0, s))
    if not res:
        return float("nan"), float("nan"), float("nan")
    p = rate_period(PAPER_START, res, PAPER_TAU)
    q = rate_sequential(PAPER_START, res, PAPER_TAU)
    return p.rating, p.rd, q.rating


def run_pool(cfg, run, models: list[dict], experts: list, pool, show_progress: bool = True, backend=None,
             serve: str = "auto") -> dict:  # fmt: skip
    """Play (resuming) the selection and confirmation sets, rate, decide, measure, report. `backend` runs
    the games (arena_tasks: here on `pool`, or in chunks on Ray with `pool` None)."""
    from lab_shared.progress import progress
    from lab_transcendence.arena import ExpertPlayer, GameLog, GameSpec, game_seed
    from lab_transcendence.arena_tasks import play as play_specs
    from lab_transcendence.rating import diff_ci, pool_ml
    from lab_transcendence.transcend import game_length, make_model_player, player_name

    if not experts:
        raise LabError(
            "the pool design needs the model's synthetic experts (a synth corpus); use --design anchors"
        )
    anchor = anchor_expert(cfg.anchor_depth, cfg.anchor_random)
    players: dict = {e.name: ExpertPlayer(pool, e) for e in experts}
    players[anchor.name] = ExpertPlayer(pool, anchor)
    fixed = {anchor.name: cfg.anchor_rating}
    ids: dict[str, str] = {e.name: e.name for e in experts} | {anchor.name: anchor.name}
    settings: dict[str, dict] = {}  # player name -> model setting
    for m in models:
        pols = ["position"] if m["kind"] == "position" else cfg.policies
        for pol in pols:
            for t in cfg.temperatures:
                name = player_name(m["label"], t, pol)
                players[name] = make_model_player(m, t, pol, name, cfg)
                settings[name] = {"model": m["label"], "kind": m["kind"], "policy": pol, "temperature": t}
                ids[name] = f"{name}#{m['hash']}"
    log = GameLog(run.file("games.jsonl"))

    def schedule(
        phase: str, model_names: list[str], n: int, extra: dict[tuple[str, str], int]
    ) -> list[GameSpec]:
        """Model settings x (experts + anchor), and every pair among experts + anchor; n games a pair."""
        seed = cfg.seed + (CONFIRM_SEED_OFFSET if phase == CONFIRM else 0)
        others = [e.name for e in experts] + [anchor.name]
        pairs = [(a, b) for a in model_names for b in others]
        pairs += [(a, b) for i, a in enumerate(others) for b in others[i + 1 :]]
        specs = []
        for a, b in pairs:
            for g in range(max(n, extra.get((a, b), 0))):
                gid = f"{phase}|{ids[a]}|{ids[b]}|{g}"
                w, bl = (a, b) if g % 2 == 0 else (b, a)
                specs.append(GameSpec(gid, w, bl, round=g + 1, seed=game_seed(seed, gid)))
        return specs

    def play(specs: list[GameSpec], desc: str) -> list[dict]:
        todo = len([s for s in specs if s.game_id not in log.done_ids()])
        bar = progress(total=todo, desc=desc, enabled=show_progress) if todo else None

        def on_game(rec: dict) -> None:
            if bar is not None:
                bar.update(1, last=rec["result"])
            run.metrics.log(game=rec["game_id"], result=rec["result"], termination=rec["termination"])

        recs = play_specs(specs, players, log, backend, concurrency=cfg.concurrency, max_moves=game_length(cfg),
                          on_game=on_game, claim_draws=cfg.protocol == "lab", stockfish=cfg.stockfish,
                          serve=serve, device=cfg.device)  # fmt: skip
        if bar is not None:
            bar.close()
        return recs

    expert_names = [e.name for e in experts]
    # 1. selection
    sel_specs = schedule(SELECT, list(settings), cfg.selection_games, {})
    sel_records = play(sel_specs, "selection games")
    sel_fit = pool_ml(pool_games(sel_records), fixed, bootstrap=min(cfg.bootstrap, 300), seed=cfg.seed)
    if not sel_fit["ratings"]:
        raise LabError("no selection game could be played")
    best_expert_sel = max(expert_names, key=lambda n: sel_fit["ratings"].get(n, -math.inf))
    chosen: dict[str, dict] = {}
    for m in models:
        mine = [n for n, s in settings.items() if s["model"] == m["label"]]
        best = max(mine, key=lambda n: (sel_fit["ratings"].get(n, -math.inf), -settings[n]["temperature"]))
        low = min(mine, key=lambda n: (settings[n]["temperature"], n))
        high = max(mine, key=lambda n: (settings[n]["temperature"], n))
        chosen[m["label"]] = {"best": best, "lowest": low, "highest": high}
    # 2. confirmation
    conf_names = sorted({n for c in chosen.values() for n in c.values()}, key=list(settings).index)
    extra = {(c["best"], best_expert_sel): cfg.h2h_games for c in chosen.values()}
    conf_specs = schedule(CONFIRM, conf_names, cfg.confirm_games, extra)
    conf_records = play(conf_specs, "confirmation games")
    conf_fit = pool_ml(pool_games(conf_records), fixed, bootstrap=cfg.bootstrap, seed=cfg.seed + 1)
    return {
        "anchor": anchor,
        "fixed": fixed,
        "settings": settings,
        "chosen": chosen,
        "best_expert_selection": best_expert_sel,
        "selection": (sel_records, sel_fit),
        "confirmation": (conf_records, conf_fit),
        "experts": experts,
        "diff_ci": diff_ci,
    }


def verdicts(out: dict, models: list[dict]) -> list[dict]:
    """One verdict per model, decided on the confirmation set only."""
    conf_records, fit = out["confirmation"]
    experts = [e.name for e in out["experts"]]
    best_expert = max(experts, key=lambda n: fit["ratings"].get(n, -math.inf))
    res = []
    for m in models:
        c = out["chosen"][m["label"]]
        name = c["best"]
        vs = {}
        for e in experts:
            d, ci = out["diff_ci"](fit, name, e)
            vs[e] = {"diff": d, "ci95": ci}
        h2h = [r for r in conf_records if {r["white"], r["black"]} == {name, out["best_expert_selection"]}]
        h2h_scores = [s for s in (_score(r, name) for r in h2h) if s is not None]
        lo_m = fit["ci95"][name][0]
        hi_e = fit["ci95"][best_expert][1]
        s = out["settings"][name]
        res.append(
            {
                "model": m["label"],
                "model_path": m["path"],
                "model_kind": m["kind"],
                "weights_hash": m["hash"],
                "transcends": all(v["ci95"][0] > 0 for v in vs.values()),
                "rule": "95% bootstrap interval of (model - expert) above 0 for every expert, confirmation games",
                "setting": {"temperature": s["temperature"], "policy": s["policy"], "player": name},
                "selected_on": "selection games (seed)",
                "best_expert": best_expert,
                "ml_elo": fit["ratings"][name],
                "ml_ci95": fit["ci95"][name],
                "best_expert_ml_elo": fit["ratings"][best_expert],
                "best_expert_ml_ci95": fit["ci95"][best_expert],
                "intervals_overlap": not lo_m > hi_e,
                "vs_experts": vs,
                "confirmation_games": player_summary(conf_records, name)["games"],
                "head_to_head": {
                    "opponent": out["best_expert_selection"],
                    "games": len(h2h_scores),
                    "score": sum(h2h_scores) / len(h2h_scores) if h2h_scores else float("nan"),
                },
            }
        )
    return res


def table_rows(out: dict, phase: str) -> list[dict]:
    records, fit = out["selection" if phase == SELECT else "confirmation"]
    rows = []
    names = [n for n in fit["ratings"]]
    order = (
        [n for n in out["settings"] if n in names] + [e.name for e in out["experts"]] + [out["anchor"].name]
    )
    for n in order:
        if n not in fit["ratings"]:
            continue
        s = out["settings"].get(n)
        summ = player_summary(records, n)
        g, grd, gseq = glicko_columns(records, n, fit["ratings"])
        rows.append(
            {
                "player": n,
                "kind": s["kind"] if s else ("anchor" if n == out["anchor"].name else "expert"),
                "T": s["temperature"] if s else "",
                "ml_elo": fit["ratings"][n],
                "ml_ci95": fit["ci95"][n],
                "games": summ["games"],
                "score": summ["score"],
                "W/D/L": f"{summ['wins']}/{summ['draws']}/{summ['losses']}",
                "glicko2": g,
                "glicko2_rd": grd,
                "glicko2_sequential": gseq,
                "fixed": n in out["fixed"],
            }
        )
    return rows


def held_out_boards(meta: dict, n: int, seed: int) -> list:
    """n positions from the held-out games of the model's positions folder (None if unknown)."""
    from lab_shared.io import read_json
    from lab_transcendence.position_score import held_out_positions
    from lab_transcendence.positions import corpus_texts, transcript_sans

    pdir = (meta.get("data") or {}).get("positions_dir")
    if not pdir or not (Path(pdir) / "meta.json").is_file():
        return []
    pmeta = read_json(Path(pdir) / "meta.json")
    texts, _ = corpus_texts(Path(pmeta["corpus"]))
    every = int(pmeta.get("val_every", 50))
    games = [transcript_sans(t) for g, t in enumerate(texts) if g % every == 0]
    return held_out_positions(games, n, seed=seed)

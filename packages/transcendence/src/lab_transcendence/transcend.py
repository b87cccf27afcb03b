"""The experiment: each model at each temperature and legal-move policy against Stockfish levels, rated.

For every (model, temperature, policy) the model plays `games` games against each Stockfish level
(colours alternating) and is rated by Glicko-2 against the level anchors (one period) and, beside it, by
maximum likelihood against the same anchors (`ml_rating` ± `ml_se`). Each synthetic expert of the
model's training data (when its metadata names them) plays the same levels under the same limits and is
rated the same ways, so "model vs best expert" compares like with like. Outputs: games.jsonl/games.pgn,
the table (transcendence.md/.csv), Figure 1 (rating against temperature) and the verdict in results.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from lab_shared.errors import LabError

PAPER_TEMPERATURES = [0.001, 0.01, 0.1, 0.3, 0.5, 0.75, 1.0, 1.5]


@dataclass
class EvalConfig:
    models: list[str] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=lambda: list(PAPER_TEMPERATURES))
    policies: list[str] = field(default_factory=lambda: ["paper", "masked"])
    levels: list[int] = field(default_factory=lambda: [1, 3, 5])
    games: int = 100  # per model, temperature, policy and level; colours alternate
    limit: str = "time:0.1"  # engine move limit: time:S | nodes:N | depth:N | depth:level+1
    max_moves: int = 89  # more full moves than this is a draw (the paper's rule); 0 = off
    concurrency: int = 32  # live games at once (the model batches their positions)
    engines: int = 2  # Stockfish processes in the pool
    anchors: str | None = None  # JSON from `lab chess calibrate`; default: the paper's anchors
    rating_method: str = "period"  # period (order-free Glicko-2) | sequential (the paper's)
    experts: bool = True  # also rate the synthetic experts named in the model's data metadata
    expert_games: int = 0  # games per expert and level (0 = same as games)
    attempts: int = 5  # paper policy: samples before a forfeit
    stockfish: str | None = None
    device: str = "auto"
    seed: int = 0
    # the pool design (pool.py): one rating pool with the experts, selection then confirmation
    protocol: str = "lab"  # lab | paper (the paper's prompt, move and draw rules; see docs/chess-eval.md)
    design: str = "anchors"  # anchors (vs Stockfish levels, the paper's) | pool
    selection_games: int = 12  # pool: games a pair in the selection set
    confirm_games: int = 40  # pool: games a pair in the confirmation set (fresh seeds)
    h2h_games: int = 100  # pool: confirmation games of the selected setting vs the selection's best expert
    anchor_depth: int = 1  # pool: the fixed anchor is Stockfish at this depth ...
    anchor_random: float = 0.5  # ... playing a random legal move with this probability ...
    anchor_rating: float = (
        1500.0  # ... pinned at this Elo (the Glicko-2 start, so its columns are comparable)
    )
    bootstrap: int = 1000  # bootstrap resamples (over games) for the 95% intervals
    positions: int = 300  # pool: held-out positions of the per-position measure (position models; 0 = off)
    position_depth: int = 8  # Stockfish depth of the per-position measure


def validate(cfg: EvalConfig) -> None:
    from lab_transcendence.engines import parse_limit
    from lab_transcendence.player import POLICIES

    if not cfg.models:
        raise LabError("no model given: pass --model DIR")
    for t in cfg.temperatures:
        if not t > 0:
            raise LabError(f"temperature must be > 0, got {t}")
    for p in cfg.policies:
        if p not in POLICIES:
            raise LabError(f"unknown legal-move policy {p!r} (choose paper or masked)")
    if cfg.games < 1:
        raise LabError(f"games must be >= 1, got {cfg.games}")
    if cfg.concurrency < 1 or cfg.engines < 1:
        raise LabError("concurrency and engines must be >= 1")
    if cfg.protocol not in ("lab", "paper"):
        raise LabError(f"unknown protocol {cfg.protocol!r} (choose lab or paper)")
    if cfg.design not in ("anchors", "pool"):
        raise LabError(f"unknown design {cfg.design!r} (choose anchors or pool)")
    if cfg.design == "pool" and (cfg.selection_games < 1 or cfg.confirm_games < 1):
        raise LabError("selection_games and confirm_games must be >= 1")
    if not 0 <= cfg.anchor_random <= 1 or cfg.anchor_depth < 1:
        raise LabError("anchor_random must be in [0, 1] and anchor_depth >= 1")
    if cfg.rating_method not in ("period", "sequential"):
        raise LabError(f"unknown rating method {cfg.rating_method!r} (choose period or sequential)")
    parse_limit(cfg.limit)


def _label(path: str, taken: set[str]) -> str:
    base = Path(path).resolve().name or "model"
    label, n = base, 1
    while label in taken:
        n += 1
        label = f"{base}-{n}"
    taken.add(label)
    return label


def player_name(label: str, temperature: float, policy: str) -> str:
    return f"{label}@T{temperature:g}/{policy}"


def experts_from_meta(meta: dict) -> list:
    """The synthetic experts a model's training data came from (empty for real data)."""
    from lab_transcendence.synth import Expert

    data = meta.get("data") or {}
    specs = data.get("experts") or meta.get("experts")
    if not specs:
        for key in ("data_dir", "path", "dir"):
            d = data.get(key)
            if d and (Path(d) / "experts.json").is_file():
                from lab_shared.io import read_json

                raw = read_json(Path(d) / "experts.json")
                specs = raw.get("experts", raw) if isinstance(raw, dict) else raw
                break
    out = []
    for s in specs or []:
        if isinstance(s, dict) and s.get("kind", "expert") == "expert" and "name" in s:
            out.append(Expert.from_dict(s))
    return out


def game_length(cfg: EvalConfig) -> int | None:
    """Full moves before a draw: the config's (0 = off); the paper protocol's 90 when left at lab's 89."""
    if cfg.protocol == "paper" and cfg.max_moves == 89:
        return 90
    return cfg.max_moves or None


def make_model_player(m: dict, temperature: float, policy: str, name: str, cfg: EvalConfig):
    """The arena player of a loaded model (dict from load_any + label/path/hash) at one setting; its
    `recipe()` rebuilds it where a backend task runs (arena_tasks)."""
    headers = {"Model": str(m["path"]), "WeightsHash": m["hash"], "ModelKind": m["kind"]}
    player = model_player(m["kind"], m["model"], m["tok"], temperature, policy, name, cfg.attempts, cfg.protocol,
                          headers)  # fmt: skip
    recipe = {"path": str(Path(m["path"]).absolute()), "temperature": temperature, "policy": policy,
              "name": name, "attempts": cfg.attempts, "protocol": cfg.protocol, "base_headers": headers,
              "headers": player.headers()}  # fmt: skip
    player.recipe = lambda: ("model", name, recipe)
    return player


def model_player(kind: str, model, tok, temperature: float, policy: str, name: str, attempts: int,
                 protocol: str, headers: dict):  # fmt: skip
    """A ModelPlayer (transcript GPT) or PositionPlayer (position policy) at one setting."""
    if kind == "position":
        from lab_transcendence.position_player import PositionPlayer

        return PositionPlayer(model, temperature, name=name, headers=headers)
    from lab_transcendence.player import ModelPlayer

    return ModelPlayer(model, tok, temperature, policy, name=name, attempts=attempts, headers=headers,
                       protocol=protocol)  # fmt: skip


def _model_moves(rec: dict, name: str) -> int:
    white = rec["white"] == name
    return (rec["plies"] + 1) // 2 if white else rec["plies"] // 2


def run_experiment(
    cfg: EvalConfig, run, show_progress: bool = True, backend=None, serve: str = "auto"
) -> dict:
    """Play every game not yet in run/games.jsonl, then rate and report. Returns the results dict.

    `backend` (lab_shared.backend.Backend) runs the games: here (default) or in chunks on Ray, where each
    worker has its own Stockfish and the model is served as `serve` says (arena_tasks)."""
    from lab_shared.device import choose_device
    from lab_shared.progress import progress
    from lab_transcendence.arena import EnginePlayer, ExpertPlayer, GameLog, GameSpec, game_seed
    from lab_transcendence.arena_tasks import SERVE, play
    from lab_transcendence.engines import level_settings
    from lab_transcendence.loading import load_any, weights_hash
    from lab_transcendence.rating import check_levels, load_anchors

    validate(cfg)
    if serve not in SERVE:
        raise LabError(f"--serve must be auto, actor or worker, got {serve!r}")
    anchors = load_anchors(cfg.anchors)
    check_levels(cfg.levels, anchors)
    device = choose_device(cfg.device)
    models, taken, loaded = [], set(), []
    for path in cfg.models:
        if not Path(path).exists():
            raise LabError(f"model folder not found: {path}")
        kind, model, tok, meta = load_any(path, device)
        if kind == "position" and set(cfg.policies) == {"paper"}:
            raise LabError(
                f"{path} is a position model: it has no paper policy (it scores the legal moves of the board); "
                "use --policy masked"
            )
        label = _label(path, taken)
        loaded.append({"label": label, "path": str(path), "kind": kind, "model": model, "tok": tok, "meta": meta,
                       "hash": weights_hash(path)})  # fmt: skip
        models.append((label, path, model, tok, meta))
    if cfg.design == "pool":
        return _run_pool(cfg, run, loaded, show_progress, backend, serve)

    pool = _local_pool(cfg, backend)
    try:
        players: dict = {}
        opponents: dict[str, tuple[float, float]] = {}
        for lv in cfg.levels:
            sf = EnginePlayer(pool, level_settings(lv, cfg.limit))
            players[sf.name] = sf
            opponents[sf.name] = anchors[lv]
        rated: list[dict] = []  # one entry per rated player
        specs: list[GameSpec] = []

        def add_games(name: str, n: int, key: str | None = None) -> None:
            for lv in cfg.levels:
                opp = level_settings(lv, cfg.limit).name
                for g in range(n):
                    gid = f"{key or name}|{opp}|{g}"  # a model's games are keyed by its weights' hash
                    w, b = (name, opp) if g % 2 == 0 else (opp, name)
                    specs.append(GameSpec(gid, w, b, round=g + 1, seed=game_seed(cfg.seed, gid)))

        experts: dict[str, object] = {}
        for m in loaded:
            label, meta = m["label"], m["meta"]
            for pol in ["position"] if m["kind"] == "position" else cfg.policies:
                for t in cfg.temperatures:
                    name = player_name(label, t, pol)
                    players[name] = make_model_player(m, t, pol, name, cfg)
                    rated.append(
                        {"kind": "model", "name": name, "model": label, "policy": pol, "temperature": t,
                         "model_kind": m["kind"]}
                    )  # fmt: skip
                    add_games(name, cfg.games, key=f"{name}#{m['hash']}")
            if cfg.experts:
                for e in experts_from_meta(meta):
                    experts.setdefault(e.name, e)
        for ename, e in experts.items():
            players[ename] = ExpertPlayer(pool, e)
            rated.append({"kind": "expert", "name": ename, "data_rating": getattr(e, "rating", None)})
            add_games(ename, cfg.expert_games or cfg.games)

        log = GameLog(run.file("games.jsonl"))
        todo = len([s for s in specs if s.game_id not in log.done_ids()])
        bar = progress(total=todo, desc="games", enabled=show_progress) if todo else None

        def on_game(rec: dict) -> None:
            if bar is not None:
                bar.update(1, last=rec["result"])
            run.metrics.log(game=rec["game_id"], result=rec["result"], termination=rec["termination"])

        if cfg.protocol == "paper":  # the paper's order: every game with the model as Black, then as White
            model_names = {r["name"] for r in rated if r["kind"] == "model"}
            specs.sort(key=lambda sp: 0 if sp.black in model_names else 1)
        records = play(specs, players, log, backend, concurrency=cfg.concurrency, max_moves=game_length(cfg),
                       on_game=on_game, claim_draws=cfg.protocol == "lab", stockfish=cfg.stockfish,
                       engines=1, serve=serve, device=cfg.device)  # fmt: skip
        if bar is not None:
            bar.close()
        restarts = pool.restarts if pool is not None else 0
    finally:
        if pool is not None:
            pool.close()
    return report(cfg, run, records, rated, opponents, models, restarts)


def report(
    cfg: EvalConfig, run, records: list[dict], rated: list[dict], opponents, models, restarts: int
) -> dict:
    """Rate every player, write the table, Figure 1, the PGN and results.json."""
    from lab_shared.report import line_plot, markdown_table, write_table
    from lab_transcendence.arena import write_pgn
    from lab_transcendence.rating import rate_records

    write_pgn(records, run.file("games.pgn"))
    rows = []
    for p in rated:
        r = rate_records(records, p["name"], opponents, method=cfg.rating_method)
        row = {k: v for k, v in p.items() if k != "name"} | {"player": p["name"]}
        row |= {
            k: r[k]
            for k in ("rating", "rd", "ml_rating", "ml_se", "games", "score", "wins", "draws", "losses")
            + ("forfeits", "errors")
        }
        if p["kind"] == "model":
            mine = [x for x in records if p["name"] in (x["white"], x["black"])]
            moves = sum(_model_moves(x, p["name"]) for x in mine)
            illegal = sum(x["illegal"]["white" if x["white"] == p["name"] else "black"] for x in mine)
            row["legal_rate"] = moves / (moves + illegal) if moves + illegal else float("nan")
            if cfg.rating_method == "period":
                row["rating_sequential"] = rate_records(records, p["name"], opponents, method="sequential")[
                    "rating"
                ]
            if cfg.protocol == "paper":
                # the paper's code: game-by-game Glicko-2, one rating per Stockfish level, over the Black
                # games, then the White games (in game order, whatever order they finished in)
                ordered = sorted(mine, key=lambda x: (x["white"] == p["name"], x["round"]))
                row["paper_glicko_per_level"] = {
                    opp: rate_records(ordered, p["name"], {opp: opponents[opp]}, method="sequential")[
                        "rating"
                    ]
                    for opp in opponents
                }
                row["paper_game_order"] = [x["game_id"] for x in ordered]
        rows.append(row)
    for row in rows:  # the headline fields of both designs (Wald interval here: no bootstrap set)
        ml, se = row["ml_rating"], row["ml_se"]
        row["ml_elo"], row["ml_ci95"] = ml, [ml - 1.96 * se, ml + 1.96 * se]
    model_rows = [r for r in rows if r["kind"] == "model"]
    expert_rows = [r for r in rows if r["kind"] == "expert"]
    best_expert = max(expert_rows, key=lambda r: r["rating"]) if expert_rows else None
    best_expert_ml = max(expert_rows, key=_ml_key) if expert_rows else None
    table = [
        {
            "model": r["model"],
            "policy": r["policy"],
            "T": r["temperature"],
            "rating": r["rating"],
            "rd": r["rd"],
            "ml_rating": r["ml_rating"],
            "ml_se": r["ml_se"],
            "games": r["games"],
            "score": r["score"],
            "W/D/L": f"{r['wins']}/{r['draws']}/{r['losses']}",
            "forfeits": r["forfeits"],
            "legal_rate": r["legal_rate"],
            "errors": r["errors"],
        }
        for r in model_rows
    ] + [
        {
            "model": r["player"],
            "policy": "expert",
            "T": "",
            "rating": r["rating"],
            "rd": r["rd"],
            "ml_rating": r["ml_rating"],
            "ml_se": r["ml_se"],
            "games": r["games"],
            "score": r["score"],
            "W/D/L": f"{r['wins']}/{r['draws']}/{r['losses']}",
            "forfeits": "",
            "legal_rate": "",
            "errors": r["errors"],
        }
        for r in expert_rows
    ]
    write_table(table, run.file("transcendence"))

    verdicts = []
    for label, _path, _m, _t, meta in models:
        data_max = meta.get("max_rating")
        for pol in cfg.policies:
            mine = [r for r in model_rows if r["model"] == label and r["policy"] == pol]
            if not mine:
                continue
            v = {
                "model": label,
                "policy": pol,
                "lowest_T": min(r["temperature"] for r in mine),
                "data_max_rating": data_max,
            }
            v |= _compare(mine, best_expert, data_max, "rating", "rd", lambda r: r["rating"])
            # the same comparison with the maximum-likelihood ratings (best setting and expert by ML)
            v |= _compare(mine, best_expert_ml, data_max, "ml_rating", "ml_se", _ml_key, prefix="ml_")
            verdicts.append(v)
    # Figure 1: rating against temperature, one line per model and policy, the references as horizontal lines
    series, yerr = {}, {}
    for label, *_ in models:
        for pol in cfg.policies:
            mine = sorted(
                (r for r in model_rows if r["model"] == label and r["policy"] == pol),
                key=lambda r: r["temperature"],
            )
            if mine:
                key = f"{label} ({pol})"
                series[key] = ([r["temperature"] for r in mine], [r["rating"] for r in mine])
                yerr[key] = [r["rd"] for r in mine]
    hlines = {}
    for label, _p, _m, _t, meta in models:
        if meta.get("max_rating") is not None:
            hlines[f"max rating in data ({label})"] = float(meta["max_rating"])
    if best_expert is not None:
        hlines[f"best expert in arena ({best_expert['player']})"] = best_expert["rating"]
    fig = line_plot(
        run.plots / "figure1_rating_vs_temperature.png",
        series,
        "temperature",
        "Glicko-2 rating",
        title="Rating against temperature (Figure 1)",
        hlines=hlines,
        yerr=yerr,
        logx=True,
    )
    text = markdown_table(table, floatfmt=".1f")
    summary = [verdict_line(v) for v in verdicts]
    head = verdicts[0] if verdicts else None
    verdict_obj = None
    if head is not None:
        verdict_obj = {
            "transcends": head["ml_transcends"] == "yes",
            "setting": {"temperature": head["ml_best_T"], "policy": head["policy"]},
            "best_expert": head["ml_reference"],
            "confirmation_games": 0,  # the anchors design has no confirmation set: use --design pool
            "model": head["model"],
            "rule": "ML rating - SE > best expert + SE (same games as the selection)",
        }
    results = {
        "design": "anchors",
        "verdict": verdict_obj,
        "table": table,
        "ratings": rows,
        "verdicts": verdicts,
        "summary": summary,
        "engine_restarts": restarts,
        "games_recorded": len(records),
        "figure1": str(fig),
        "anchors": {k: list(v) for k, v in opponents.items()},
    }
    run.write_results(results)
    (run.file("summary.md")).write_text(text + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n")
    return results


def _ml_key(row: dict) -> float:
    """Sort key on the maximum-likelihood rating; a player with no scored games (NaN) ranks last."""
    return -math.inf if math.isnan(row["ml_rating"]) else row["ml_rating"]


def _compare(
    mine: list[dict],
    best_expert: dict | None,
    data_max: float | None,
    rating_key: str,
    dev_key: str,
    sort_key,
    prefix: str = "",
) -> dict:
    """One verdict pass: the best setting (by `sort_key`) and the lowest-temperature one against the reference.

    The reference is the best expert (its `rating_key` ± `dev_key`) when there is one, else the data's max
    rating (± 0), else none. Output keys carry `prefix`; deviations are named by `dev_key` less the prefix
    (`rd` for Glicko-2, `se` for `ml_se`).
    """
    best = max(mine, key=sort_key)
    low = min(mine, key=lambda r: r["temperature"])
    ref_name, ref, ref_dev = ("data max rating", data_max, 0.0) if data_max is not None else (None, None, 0.0)
    if best_expert is not None:
        ref_name, ref, ref_dev = (
            f"best expert ({best_expert['player']})",
            best_expert[rating_key],
            best_expert[dev_key],
        )
    dev = dev_key.removeprefix(prefix)
    out = {
        "best_T": best["temperature"],
        "best_rating": best[rating_key],
        f"best_{dev}": best[dev_key],
        "lowest_T_rating": low[rating_key],
        f"lowest_T_{dev}": low[dev_key],
        "reference": ref_name,
        "reference_rating": ref,
        f"reference_{dev}": ref_dev,
        "transcends": verdict(best[rating_key], best[dev_key], ref, ref_dev),
        "low_T_transcends": verdict(low[rating_key], low[dev_key], ref, ref_dev),
    }
    return {prefix + k: x for k, x in out.items()}


def verdict(rating: float, rd: float, ref: float | None, ref_rd: float) -> str:
    """`yes` when the rating minus its deviation clears the reference plus its deviation.

    Used with Glicko-2 (rating, RD) and with the maximum-likelihood (rating, standard error).
    """
    if ref is None or math.isnan(rating):
        return "unknown"
    if rating - rd > ref + ref_rd:
        return "yes"
    if rating > ref:
        return "within deviations"
    return "no"


def verdict_line(v: dict) -> str:
    """Glicko-2 (one period) verdict, then the maximum-likelihood one when the verdict has it."""
    ref = (
        "no reference"
        if v["reference"] is None
        else (f"{v['reference']} {v['reference_rating']:.0f} ± {v['reference_rd']:.0f}")
    )
    line = (
        f"{v['model']} ({v['policy']}): Glicko-2 (one period): best T={v['best_T']:g} rating "
        f"{v['best_rating']:.0f} ± {v['best_rd']:.0f}; T={v['lowest_T']:g}: {v['lowest_T_rating']:.0f} ± "
        f"{v['lowest_T_rd']:.0f}; vs {ref}: transcends = {v['transcends']} (at lowest T: {v['low_T_transcends']})"
    )
    if "ml_transcends" not in v:
        return line
    ml_ref = (
        "no reference"
        if v["ml_reference"] is None
        else (f"{v['ml_reference']} {v['ml_reference_rating']:.0f} ± {v['ml_reference_se']:.0f}")
    )
    return line + (
        f". Maximum likelihood vs fixed anchors (± SE): best T={v['ml_best_T']:g} rating "
        f"{v['ml_best_rating']:.0f} ± {v['ml_best_se']:.0f}; T={v['lowest_T']:g}: {v['ml_lowest_T_rating']:.0f} ± "
        f"{v['ml_lowest_T_se']:.0f}; vs {ml_ref}: transcends = {v['ml_transcends']} "
        f"(at lowest T: {v['ml_low_T_transcends']})"
    )


def _local_pool(cfg: EvalConfig, backend):
    """The engine pool of the local backend; None on Ray (each worker keeps its own)."""
    if backend is not None and backend.is_ray:
        return None
    from lab_transcendence.engines import open_pool

    return open_pool(cfg.stockfish, size=cfg.engines)


def _run_pool(cfg: EvalConfig, run, loaded: list[dict], show_progress: bool, backend=None,
              serve: str = "auto") -> dict:  # fmt: skip
    """The pool design (pool.py): play, rate, decide on the confirmation set, per-position measure, report."""
    from lab_transcendence.pool import run_pool

    experts: dict[str, object] = {}
    for m in loaded:
        for e in experts_from_meta(m["meta"]):
            experts.setdefault(e.name, e)
    pool = _local_pool(cfg, backend)
    try:
        out = run_pool(cfg, run, loaded, list(experts.values()), pool, show_progress, backend, serve)
        restarts = pool.restarts if pool is not None else 0
    finally:
        if pool is not None:
            pool.close()
    return pool_report(cfg, run, out, loaded, restarts)


def pool_report(cfg: EvalConfig, run, out: dict, loaded: list[dict], restarts: int) -> dict:
    """Tables (selection, confirmation), verdicts, per-position measure, figure, results.json."""
    from lab_shared.report import line_plot, markdown_table, write_table
    from lab_transcendence.arena import write_pgn
    from lab_transcendence.pool import CONFIRM, SELECT, table_rows, verdicts

    sel_records, _ = out["selection"]
    conf_records, _ = out["confirmation"]
    write_pgn(sel_records + conf_records, run.file("games.pgn"))
    sel_rows, conf_rows = table_rows(out, SELECT), table_rows(out, CONFIRM)
    vds = verdicts(out, loaded)
    fmt = lambda rows: [  # noqa: E731
        {**r, "ml_ci95": f"[{r['ml_ci95'][0]:.0f}, {r['ml_ci95'][1]:.0f}]"} for r in rows
    ]
    write_table(fmt(conf_rows), run.file("transcendence"))
    write_table(fmt(sel_rows), run.file("selection"))
    per_position = None
    if cfg.positions > 0:
        per_position = _per_position(cfg, out, loaded)
    # figure: selection ML Elo against temperature, intervals as error bars, the best expert as a line
    series, yerr = {}, {}
    for m in loaded:
        mine = sorted((r for r in sel_rows if r["kind"] == m["kind"] and r["player"].startswith(m["label"] + "@")),
                      key=lambda r: r["T"])  # fmt: skip
        if mine:
            series[m["label"]] = ([r["T"] for r in mine], [r["ml_elo"] for r in mine])
            yerr[m["label"]] = [(r["ml_ci95"][1] - r["ml_ci95"][0]) / 2 for r in mine]
    hlines = {}
    experts = [r for r in sel_rows if r["kind"] == "expert"]
    if experts:
        be = max(experts, key=lambda r: r["ml_elo"])
        hlines[f"best expert ({be['player']})"] = be["ml_elo"]
    fig = line_plot(run.plots / "figure1_rating_vs_temperature.png", series, "temperature",
                    "ML Elo (selection games, 95% CI)", title="Rating against temperature", hlines=hlines,
                    yerr=yerr, logx=True)  # fmt: skip
    summary = [pool_verdict_line(v) for v in vds]
    if per_position:
        summary.append(per_position_line(per_position))
    players = {r["player"]: {k: r[k] for k in ("ml_elo", "ml_ci95", "games", "score", "glicko2", "glicko2_rd")}
               | {"kind": r["kind"], "T": r["T"]} for r in conf_rows}  # fmt: skip
    results = {
        "design": "pool",
        "verdict": vds[0] if vds else None,
        "verdicts": vds,
        "players": players,
        "confirmation": conf_rows,
        "selection": sel_rows,
        "selection_best": out["chosen"],
        "best_expert_selection": out["best_expert_selection"],
        "anchor": {
            "name": out["anchor"].name,
            "rating": cfg.anchor_rating,
            "depth": cfg.anchor_depth,
            "random_rate": cfg.anchor_random,
            "fixed": True,
        },  # fmt: skip
        "per_position": per_position,
        "summary": summary,
        "ratings": conf_rows,
        "engine_restarts": restarts,
        "games_recorded": len(sel_records) + len(conf_records),
        "games_selection": len(sel_records),
        "games_confirmation": len(conf_records),
        "figure1": str(fig),
    }
    run.write_results(results)
    text = "## Confirmation set (decides)\n\n" + markdown_table(elo_ints(fmt(conf_rows)), floatfmt=".3g")
    text += "\n\n## Selection set\n\n" + markdown_table(elo_ints(fmt(sel_rows)), floatfmt=".3g")
    run.file("summary.md").write_text(text + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n")
    return results


ELO_COLUMNS = ("ml_elo", "glicko2", "glicko2_rd", "glicko2_sequential")


def elo_ints(rows: list[dict]) -> list[dict]:
    """Rows with their Elo columns as whole numbers (a `.3g` table would print 1598 as 1.6e+03)."""
    out = []
    for r in rows:
        r = dict(r)
        for k in ELO_COLUMNS:
            v = r.get(k)
            if isinstance(v, float) and math.isfinite(v):
                r[k] = int(round(v))
        out.append(r)
    return out


def _per_position(cfg: EvalConfig, out: dict, loaded: list[dict]) -> dict | None:
    from lab_transcendence.arena import MoveRequest
    from lab_transcendence.pool import held_out_boards
    from lab_transcendence.position_score import score_positions
    from lab_transcendence.synth import open_engine

    m = next((x for x in loaded if x["kind"] == "position"), None)
    if m is None:
        return None  # a transcript model needs the move history: not measured on bare positions
    boards = held_out_boards(m["meta"], cfg.positions, cfg.seed)
    if not boards:
        return None
    t = min(cfg.temperatures)
    player = make_model_player(m, t, "position", f"{m['label']}@T{t:g}", cfg)
    reqs = [MoveRequest(f"pos{i}", b, [], 0) for i, b in enumerate(boards)]
    moves = [d.move for d in player.select(reqs)]
    from lab_transcendence.engines import resolve_stockfish

    engine = open_engine(resolve_stockfish(cfg.stockfish))
    try:
        res = score_positions(boards, moves, out["experts"], engine, cfg.position_depth, cfg.seed,
                              model_name=f"{m['label']}@T{t:g}")  # fmt: skip
    finally:
        engine.quit()
    res["model"] = m["label"]
    res["source"] = "held-out games of the model's positions folder (game % val_every == 0)"
    return res


def pool_verdict_line(v: dict) -> str:
    lo, hi = v["ml_ci95"]
    elo, ehi = v["best_expert_ml_ci95"]
    vs = v["vs_experts"][v["best_expert"]]
    return (
        f"{v['model']} ({v['model_kind']}) at T={v['setting']['temperature']:g} (chosen on the selection set): "
        f"ML Elo {v['ml_elo']:.0f} [{lo:.0f}, {hi:.0f}] vs best expert {v['best_expert']} "
        f"{v['best_expert_ml_elo']:.0f} [{elo:.0f}, {ehi:.0f}] on {v['confirmation_games']} confirmation games; "
        f"difference {vs['diff']:+.0f} [{vs['ci95'][0]:+.0f}, {vs['ci95'][1]:+.0f}]; head-to-head "
        f"{v['head_to_head']['score']:.3f} over {v['head_to_head']['games']} games; "
        f"transcends = {'yes' if v['transcends'] else 'no'}"
    )


def per_position_line(p: dict) -> str:
    parts = [f"{n} {r['mean']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" for n, r in p["players"].items()]
    return (
        f"expected Stockfish score (depth {p['depth']}, {p['positions']} held-out positions): "
        + ", ".join(parts)
    )

"""The chess part of `lab report` (entry point `lab.reports: chess`): the transcendence verdict of
`lab chess transcend` runs (the `verdict` object of results.json: the selected low-temperature setting
against every expert on fresh confirmation games), Figure 1 (rating against temperature with the best
expert's line and band, i.e. the data maximum of a synthetic corpus, and every expert), the per-position
measure and the rating table; `lab chess train` runs get their training summary and loss curve."""

from __future__ import annotations

import math
from pathlib import Path

from lab_shared.report import Figure, Section, Verdict, integer, interval, pyplot, save_figure, sig, signed
from lab_shared.runs import Run

TITLE = "Transcendence in chess (Zhang et al. 2024, Transcendence)"
ORDER = 2  # its place on the page: SFA, chess, scheduling (as in the README)


def _cfg(run: Run) -> dict:
    return run.config if isinstance(run.config, dict) else {}


def _is_eval(run: Run) -> bool:
    return {"temperatures", "design", "models"} <= set(_cfg(run))


def _is_train(run: Run) -> bool:
    c = _cfg(run)
    return {"data", "model", "trainer", "position"} <= set(c) and c.get("model") in ("transcript", "position")


def owns(run: Run) -> bool:
    return _is_eval(run) or _is_train(run)


def elo(v: float | None) -> str:
    return integer(v)


def _tfmt(t) -> str:
    """A temperature as written in the config (0.001, 1)."""
    try:
        return f"{float(t):g}"
    except (TypeError, ValueError):
        return str(t)


def _ci(pair) -> str:
    return interval(pair[0], pair[1], elo) if pair else "[n/a]"


def _rows(res: dict) -> list[dict]:
    """Rated players with ML Elo and a 95% interval: the confirmation pool, else the ratings table."""
    rows = res.get("confirmation") or res.get("ratings") or []
    out = []
    for r in rows:
        if "ml_elo" in r:
            lo, hi = (r.get("ml_ci95") or [math.nan, math.nan])[:2]
            out.append({**r, "_y": r["ml_elo"], "_lo": lo, "_hi": hi})
        elif "rating" in r:  # the anchors design: Glicko-2 with its deviation
            rd = r.get("rd") or 0
            out.append(
                {**r, "_y": r["rating"], "_lo": r["rating"] - 1.96 * rd, "_hi": r["rating"] + 1.96 * rd}
            )
    return out


def _temperature(r: dict) -> float | None:
    t = r.get("T", r.get("temperature"))
    try:
        return float(t)
    except (TypeError, ValueError):
        return None


def verdicts(run: Run) -> list[Verdict]:
    res, out = run.results, []
    v = res.get("verdict")
    if isinstance(v, dict):
        setting = v.get("setting") or {}
        diffs = v.get("vs_experts") or {}
        above = sum(1 for d in diffs.values() if (d.get("ci95") or [0])[0] > 0)
        detail = (
            f"{v.get('model', 'model')} at T = {_tfmt(setting.get('temperature'))} ({setting.get('policy', '?')}, chosen "
            f"on {v.get('selected_on', 'selection games')}): ML Elo {elo(v.get('ml_elo'))} {_ci(v.get('ml_ci95'))} vs "
            f"the best expert {v.get('best_expert')} {elo(v.get('best_expert_ml_elo'))} "
            f"{_ci(v.get('best_expert_ml_ci95'))}"
        )
        best = diffs.get(v.get("best_expert")) or {}
        if best:
            detail += f", difference {signed(elo(best.get('diff')))} {_ci(best.get('ci95'))}"
        detail += f"; above {above} of {len(diffs)} experts (95% bootstrap over {v.get('confirmation_games', '?')} confirmation games)"
        h2h = v.get("head_to_head") or {}
        if h2h.get("games"):
            detail += f"; head-to-head score {sig(h2h.get('score'))} over {h2h['games']} games against {h2h.get('opponent')}"
        answer = "yes" if v.get("transcends") else "no"
        if not v.get("transcends") and best and (best.get("ci95") or [0, 0])[1] > 0:
            answer = "no, not shown (the interval against the best expert covers 0)"
        out.append(Verdict("Does the model at low temperature beat every expert in its data (transcendence)?",
                           answer, detail + "."))  # fmt: skip
    # low temperature against T = 1, same model and policy
    rows = [
        r for r in _rows(res) if r.get("kind") not in ("expert", "anchor") and _temperature(r) is not None
    ]
    for key in dict.fromkeys((r.get("player", "").split("@")[0], r.get("kind")) for r in rows):
        mine = sorted(
            (r for r in rows if (r.get("player", "").split("@")[0], r.get("kind")) == key), key=_temperature
        )
        if len(mine) < 2:
            continue
        lo_t, hi_t = mine[0], mine[-1]
        gap = lo_t["_y"] - hi_t["_y"]
        answer = (
            "yes"
            if lo_t["_lo"] > hi_t["_hi"]
            else ("no" if lo_t["_hi"] < hi_t["_lo"] else "not resolved (intervals overlap)")
        )
        out.append(Verdict(
            f"Does low temperature help ({key[0]}, {key[1]}: T = {_tfmt(_temperature(lo_t))} against T = {_tfmt(_temperature(hi_t))})?",
            answer, f"ML Elo {elo(lo_t['_y'])} {interval(lo_t['_lo'], lo_t['_hi'], elo)} vs {elo(hi_t['_y'])} "
                    f"{interval(hi_t['_lo'], hi_t['_hi'], elo)} ({signed(elo(gap))}).",
        ))  # fmt: skip
    pp = res.get("per_position") or {}
    diffs = pp.get("differences") or {}
    vote = next((k for k in diffs if k.endswith("- vote")), None)
    if vote:
        d = diffs[vote]
        lo, hi = d["ci95"]
        answer = "yes" if lo > 0 else ("no" if hi < 0 else "not resolved")
        out.append(Verdict(
            "Does the model's T -> 0 move score above the experts' majority vote, position by position?",
            answer, f"{vote}: {signed(sig(d['mean']))} expected score {interval(lo, hi)} over "
                    f"{pp.get('positions')} held-out positions (Stockfish depth {pp.get('depth')}).",
        ))  # fmt: skip
    return out


def figure1(run: Run, path: Path, max_rating: float | None = None) -> Figure | None:
    """Rating against temperature: each (model, policy) a line with 95% intervals, a distinct marker and a
    small horizontal offset; the best expert's line and band (the data maximum); the other experts dotted."""
    res = run.results
    rows = _rows(res)
    models = [r for r in rows if r.get("kind") not in ("expert", "anchor") and _temperature(r) is not None]
    if not models:
        return None
    experts = sorted((r for r in rows if r.get("kind") == "expert"), key=lambda r: -r["_y"])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    keys = list(dict.fromkeys((r.get("player", "").split("@")[0], r.get("kind")) for r in models))
    markers, styles = "osD^v", ["-", "--", "-.", ":"]
    for i, key in enumerate(keys):
        mine = sorted(
            (r for r in models if (r.get("player", "").split("@")[0], r.get("kind")) == key), key=_temperature
        )
        shift = 1 + 0.06 * (i - (len(keys) - 1) / 2)  # log axis: a multiplicative offset keeps them apart
        xs = [_temperature(r) * shift for r in mine]
        ys = [r["_y"] for r in mine]
        err = [[y - r["_lo"] for y, r in zip(ys, mine)], [r["_hi"] - y for y, r in zip(ys, mine)]]
        ax.errorbar(xs, ys, yerr=err, marker=markers[i % 5], ls=styles[i % 4], ms=6, capsize=4, lw=1.6,
                    color=f"C{i}", label=f"{key[0]} ({key[1]} policy)")  # fmt: skip
    if experts:
        b = experts[0]
        name = "best expert" + (" = data maximum" if max_rating is None else "")
        ax.axhline(b["_y"], color="C3", lw=2, label=f"{name} ({b['player']}, {elo(b['_y'])})")
        ax.axhspan(b["_lo"], b["_hi"], color="C3", alpha=0.12, lw=0, label="its 95% interval")
        side = ax.get_yaxis_transform()  # x in axes units, y in data units
        for e in experts[1:]:
            ax.axhline(e["_y"], color="grey", ls=":", lw=1)
            ax.text(0.99, e["_y"], f"{e['player']} {elo(e['_y'])}", transform=side, ha="right", va="bottom",
                    fontsize=7, color="#555")  # fmt: skip
        if len(experts) > 1:
            ax.plot([], [], color="grey", ls=":", lw=1, label="other experts")
    if max_rating is not None:
        ax.axhline(
            max_rating, color="k", ls="--", lw=1.2, label=f"max rating in the data ({elo(max_rating)})"
        )
    ax.set_xscale("log")
    temps = sorted({_temperature(r) for r in models})
    ax.set_xticks(temps)
    ax.set_xticklabels([_tfmt(t) for t in temps])
    ax.minorticks_off()
    ax.set_xlabel("sampling temperature")
    ax.set_ylabel("Elo (maximum likelihood, one pool)")
    ax.set_title("Figure 1: rating against temperature")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    save_figure(fig, path)
    games = (res.get("verdict") or {}).get("confirmation_games")
    return Figure(path, "Rating of the model at each temperature against the experts of its training data, "
                        f"maximum-likelihood Elo with 95% bootstrap intervals{f' over {games} confirmation games' if games else ''}; "
                        "the band is the best expert's interval. Transcendence is a model point above the band.")  # fmt: skip


def pool_table(run: Run) -> list[dict]:
    out = []
    for r in _rows(run.results):
        out.append({
            "player": r.get("player"), "kind": r.get("kind"), "T": _tfmt(_temperature(r)) if _temperature(r) is not None else "",
            "Elo": elo(r["_y"]), "95% CI": interval(r["_lo"], r["_hi"], elo), "games": r.get("games"),
            "score": sig(r.get("score")), "W/D/L": r.get("W/D/L", ""),
            "Glicko-2": f"{elo(r['glicko2'])} ± {elo(r.get('glicko2_rd'))}" if "glicko2" in r else "",
        })  # fmt: skip
    return out


def per_position_table(run: Run) -> list[dict]:
    pp = run.results.get("per_position") or {}
    return [
        {"move of": n, "expected score": sig(r["mean"]), "95% CI": interval(*r["ci95"]),
         "agrees with the experts' vote": f"{round(100 * r['agrees_with_vote'])}%" if "agrees_with_vote" in r else ""}
        for n, r in (pp.get("players") or {}).items()
    ]  # fmt: skip


def section(runs: list[Run], fig_dir: Path) -> Section:
    evals = [r for r in runs if _is_eval(r)]
    trains = [r for r in runs if _is_train(r)]
    sec = Section(TITLE)
    texts = []
    max_rating = next((t.results.get("max_rating") for t in trains if t.results.get("max_rating")), None)
    for t in trains:
        res = t.results
        texts.append(
            f"{t.name}: {res.get('model', '')} model ({res.get('arch', '')}, {integer(res.get('params'), True)} "
            f"parameters) trained {integer(res.get('step'), True)} steps in {integer(res.get('time_s'))} s; "
            f"validation loss {sig(res.get('val_loss'))}, top-1 move accuracy {sig(res.get('val_top1'))}."
        )
        loss = next((f for f in (t.path / "plots" / "loss.png", t.path / "loss.png") if f.is_file()), None)
        if loss is not None:
            sec.images.append(Figure(loss, f"Training and validation loss of {t.name}."))
    for e in evals:
        tag = f" ({e.name})" if len(evals) > 1 else ""
        sec.verdicts += verdicts(e)
        f = figure1(e, fig_dir / f"figure1-{e.name}.png", max_rating)
        if f:
            sec.images.insert(0, f)
        sec.tables.append((f"Rating pool (confirmation games){tag}", pool_table(e)))
        pp = per_position_table(e)
        if pp:
            sec.tables.append(
                (f"Expected Stockfish score of each player's move on held-out positions{tag}", pp)
            )
        if e.results.get("design") == "pool":
            texts.append(
                "Design: the model's settings, the experts and a fixed anchor play one pool; the setting is "
                "chosen on selection games and judged on fresh confirmation games (and head to head with "
                "the best expert). The rule: " + str((e.results.get("verdict") or {}).get("rule", "")) + "."
            )
    if not evals:
        texts.append("No `lab chess transcend` run in this report: no verdict.")
    sec.text = "\n\n".join(texts)
    return sec

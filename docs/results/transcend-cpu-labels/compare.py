"""The expert-label ablation table: each arm's transcend run (games.jsonl + results.json) refit on its
confirmation games with the run's own bootstrap seed; the model at its lowest temperature and at the
selected one vs the best expert (paired bootstrap differences), head-to-head, per-position score.

    python compare.py NAME=TRANSCEND_RUN_DIR[:TRAIN_RUN_DIR] ...
"""

import json
import sys
from pathlib import Path

from lab_transcendence.pool import pool_games
from lab_transcendence.rating import diff_ci, pool_ml


def arm(name: str, spec: str) -> dict:
    trun, _, train = spec.partition(":")
    t = Path(trun)
    res = json.loads((t / "results.json").read_text())
    cfg = json.loads((t / "config.json").read_text())
    recs = [json.loads(x) for x in (t / "games.jsonl").read_text().splitlines() if x.strip()]
    conf = [r for r in recs if r["game_id"].startswith("confirm|")]
    fixed = {res["anchor"]["name"]: res["anchor"]["rating"]}
    fit = pool_ml(pool_games(conf), fixed, bootstrap=int(cfg.get("bootstrap", 1000)), seed=int(cfg["seed"]) + 1)
    v = res["verdict"]
    best = v["best_expert"]
    models = [p for p in fit["ratings"] if p.startswith("model@")]
    low = min(models, key=lambda p: float(p.split("@T")[1].split("/")[0]))
    sel = v["setting"]["player"]
    row = {"arm": name, "selected": sel, "lowest": low, "best_expert": best, "transcends": v["transcends"],
           "intervals_overlap": v["intervals_overlap"], "h2h": v["head_to_head"]}  # fmt: skip
    # the run's own intervals where it has them (its bootstrap saw the games in its own order; the refit's
    # resamples of games.jsonl can differ by a few Elo), the refit's for the rest (a lowest T not selected)
    own = res["players"]
    for key, p in (("low", low), ("sel", sel), ("best", best)):
        row[key] = {"elo": fit["ratings"][p], "ci95": own[p]["ml_ci95"] if p in own else fit["ci95"][p],
                    "games": sum(1 for r in conf if p in (r["white"], r["black"]))}  # fmt: skip
    for key, p in (("low", low), ("sel", sel)):
        vs = {e: diff_ci(fit, p, e) for e in fit["ratings"] if e.startswith("expert")}
        if p == sel:
            vs = {e: (x["diff"], x["ci95"]) for e, x in v["vs_experts"].items()}
        row[key]["minus_best"] = {"diff": vs[best][0], "ci95": vs[best][1]}
        row[key]["vs_all"] = vs
    # the refit must reproduce the run's own verdict for the selected setting
    assert abs(row["sel"]["elo"] - v["ml_elo"]) < 1e-6, (row["sel"]["elo"], v["ml_elo"])
    pp = res["per_position"]["players"]
    mkey = [k for k in pp if k.startswith("model@")][0]
    row["per_position"] = {"model": pp[mkey], "best": pp[best], "vote": pp["vote"], "model_key": mkey}
    if train:
        tr = json.loads((Path(train) / "results.json").read_text())
        row["train"] = {k: tr.get(k) for k in ("step", "val_loss", "val_top1", "train_positions", "epochs")}
        curve = [json.loads(x) for x in (Path(train) / "metrics.jsonl").read_text().splitlines() if x.strip()]
        row["curve"] = {int(m["step"]): round(m["val_loss"], 3) for m in curve if m.get("val_loss") is not None}
    return row


def ci(x: list[float], sign: bool = False) -> str:
    f = "{:+.0f}" if sign else "{:.0f}"
    return f"[{f.format(x[0])}, {f.format(x[1])}]"


def main() -> None:
    rows = [arm(*a.split("=", 1)) for a in sys.argv[1:]]
    print("| arm | setting (selection) | model at lowest T: ML Elo [95% CI] (games) | best expert, same pool "
          "| lowest T - best expert (paired) | head-to-head vs best (games) | per position (depth 8): model / "
          "best expert / vote | model's move = vote's | val loss (game pairs) | transcends |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, be, pp = r["low"], r["best"], r["per_position"]
        val = f"{r['train']['val_loss']:.3f}" if "train" in r else ""
        print(f"| {r['arm']} | T = {r['selected'].split('@T')[1].split('/')[0]} "
              f"| {lo['elo']:.0f} {ci(lo['ci95'])} ({lo['games']}) "
              f"| {r['best_expert']} {be['elo']:.0f} {ci(be['ci95'])} ({be['games']}) "
              f"| {lo['minus_best']['diff']:+.0f} {ci(lo['minus_best']['ci95'], True)} "
              f"| {r['h2h']['score']:.3f} ({r['h2h']['games']}) "
              f"| {pp['model']['mean']:.3f} / {pp['best']['mean']:.3f} / {pp['vote']['mean']:.3f} "
              f"| {pp['model']['agrees_with_vote']:.1%} | {val} "
              f"| {'yes' if r['transcends'] else 'no'} |")  # fmt: skip
    print()
    for r in rows:
        vs = ", ".join(f"{e} {d:+.0f} {ci(c, True)}" for e, (d, c) in r["low"]["vs_all"].items())
        extra = f"; val loss {r['train']['val_loss']:.3f}, top-1 {r['train']['val_top1']:.3f}" if "train" in r else ""
        print(f"- {r['arm']}: lowest T minus each expert: {vs}; model agrees with the vote in "
              f"{r['per_position']['model']['agrees_with_vote']:.0%} of positions{extra}")
        if "curve" in r:
            pts = {s: r["curve"][s] for s in sorted(r["curve"]) if s % 1000 == 0 or s == max(r["curve"])}
            print(f"  val loss by step: {pts}")
    json.dump(rows, sys.stderr, indent=1, default=str)


if __name__ == "__main__":
    main()

"""The paper's two analyses: dataset diversity and where low temperature gains reward.

- `diversity`: in positions within the first 16 plies that the corpus reaches more than 100 times, the
  entropy of the move played there, normalised by log(number of legal moves) (1 = uniform over legal moves,
  0 = always the same move). Positions are keyed by their EPD, so transpositions count together. Low
  diversity means the experts share their choices (and their errors): no majority vote to denoise.
- `reward_analysis`: replay a model's games; at each of its positions, take the model's exact move
  distribution over legal moves at several temperatures and every legal move's expected score
  (Stockfish win/draw/loss expectation, from the mover's side); the expected reward at T is
  sum p_T(m) E(m). The gain of low temperature over T = 1 per position shows whether it comes from a few
  critical positions (the paper's finding) or everywhere.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import chess

from lab_shared.errors import LabError

_COMMENT = re.compile(r"\{[^}]*\}|;[^\n]*")
_NUMBER = re.compile(r"^\d+\.(\.\.)?")
_RESULTS = {"1-0", "0-1", "1/2-1/2", "*"}


def _lines(path: Path) -> Iterator[str]:
    """The file's lines, read through the ingest's reader: a .zst is checked frame by frame to its end (a
    truncated or garbage file is one error, not a silently shorter corpus); undecodable bytes replaced."""
    from lab_transcendence.lichess import text_chunks

    rest = ""
    for chunk in text_chunks(path):
        *lines, rest = (rest + chunk).split("\n")
        for line in lines:
            yield line + "\n"
    if rest:
        yield rest


def corpus_files(path: str | Path) -> list[Path]:
    """PGN files of a corpus: a file, or every *.pgn / *.pgn.zst in a folder (recursively)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted([*p.rglob("*.pgn"), *p.rglob("*.pgn.zst")])
        if files:
            return files
        raise LabError(f"no PGN files in {p}")
    raise LabError(f"corpus not found: {p}")


def opening_lines(path: str | Path, plies: int = 16, max_games: int | None = None) -> Iterator[list[str]]:
    """The first `plies` SAN moves of each game (movetext only; headers, comments and NAGs skipped)."""
    n = 0
    for f in corpus_files(path):
        with contextlib.closing(_lines(f)) as fh:
            buf: list[str] = []
            for line in itertools.chain(fh, ["[End]\n"]):
                if line.startswith("["):
                    if buf:
                        text = _COMMENT.sub(" ", " ".join(buf))
                        sans = []
                        for tok in text.split():
                            tok = _NUMBER.sub("", tok)
                            if not tok or tok in _RESULTS or tok.startswith("$"):
                                continue
                            sans.append(tok)
                            if len(sans) >= plies:
                                break
                        yield sans
                        n += 1
                        if max_games is not None and n >= max_games:
                            return
                        buf = []
                elif line.strip():
                    buf.append(line.strip())


def diversity(path: str | Path, plies: int = 16, min_count: int = 100, max_games: int | None = None) -> dict:
    """Normalised move entropy over the frequent early positions of a corpus (see module doc)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    legal_n: dict[str, int] = {}
    games = bad = 0
    for sans in opening_lines(path, plies, max_games):
        games += 1
        board = chess.Board()
        for san in sans:
            key = board.epd()
            try:
                move = board.parse_san(san)
            except ValueError:
                bad += 1
                break
            counts[key][move.uci()] += 1
            if key not in legal_n:
                legal_n[key] = board.legal_moves.count()
            board.push(move)
    ent = []
    for key, c in counts.items():
        n = sum(c.values())
        if n <= min_count or legal_n[key] < 2:
            continue
        h = -sum((k / n) * math.log(k / n) for k in c.values())
        ent.append(h / math.log(legal_n[key]))
    return {
        "corpus": str(path),
        "games": games,
        "games_with_bad_moves": bad,
        "positions": len(ent),
        "mean_entropy": sum(ent) / len(ent) if ent else float("nan"),
        "median_entropy": sorted(ent)[len(ent) // 2] if ent else float("nan"),
        "entropies": ent,
    }


def move_rewards(pool, board: chess.Board, settings) -> tuple[list[chess.Move], list[float]]:
    """Every legal move and its expected score for the mover (Stockfish WDL expectation, multipv = all)."""
    legal = list(board.legal_moves)
    infos = pool.analyse(board, settings, multipv=len(legal))
    exp = {}
    for info in infos:
        pv = info.get("pv")
        if pv and "score" in info:
            exp[pv[0]] = info["score"].pov(board.turn).wdl(model="sf").expectation()
    moves = [m for m in legal if m in exp]
    return moves, [exp[m] for m in moves]


def reward_analysis(
    records: Sequence[dict],
    player: str,
    model,
    tokenizer,
    pool,
    settings,
    temperatures: Sequence[float] = (0.001, 0.1, 0.5, 1.0),
    max_positions: int = 200,
    batch: int = 32,
) -> dict:
    """Expected reward per temperature at the model's positions, and per-position gains of low T vs T=1."""
    import numpy as np

    from lab_transcendence.arena import MoveRequest
    from lab_transcendence.player import ModelPlayer

    positions: list[MoveRequest] = []
    for rec in records:
        if player not in (rec["white"], rec["black"]):
            continue
        color = chess.WHITE if rec["white"] == player else chess.BLACK
        board, sans = chess.Board(), []
        for uci in rec["moves"]:
            if board.turn == color:
                positions.append(MoveRequest(rec["game_id"], board.copy(), list(sans), 0))
            move = chess.Move.from_uci(uci)
            sans.append(board.san(move))
            board.push(move)
    if not positions:
        raise LabError(f"no positions of player {player!r} in the games")
    if len(positions) > max_positions:  # an even spread over the games, deterministic
        step = len(positions) / max_positions
        positions = [positions[int(i * step)] for i in range(max_positions)]
    temps = sorted(set(temperatures) | {1.0})
    probs: dict[float, list[dict]] = {t: [] for t in temps}
    for t in temps:
        if tokenizer is None:  # a position model: the board alone
            from lab_transcendence.position_player import PositionPlayer

            pp = PositionPlayer(model, t)
            score = lambda reqs, pp=pp: pp.legal_logprobs([r.board for r in reqs])  # noqa: E731
        else:
            score = ModelPlayer(model, tokenizer, t, "masked").legal_logprobs
        for i in range(0, len(positions), batch):
            for moves, lp in score(positions[i : i + batch]):
                probs[t].append(dict(zip(moves, np.exp(lp), strict=True)))
    rewards = {t: [] for t in temps}
    best = []
    for j, req in enumerate(positions):
        moves, vals = move_rewards(pool, req.board, settings)
        val = dict(zip(moves, vals, strict=True))
        best.append(max(vals) if vals else float("nan"))
        for t in temps:
            p = probs[t][j]
            mass = sum(p.get(m, 0.0) for m in moves)
            rewards[t].append(sum(p.get(m, 0.0) * val[m] for m in moves) / mass if mass > 0 else float("nan"))
    low = min(temps)
    gain = np.array(rewards[low]) - np.array(rewards[1.0])
    order = np.sort(gain[np.isfinite(gain)])[::-1]
    pos_total = order[order > 0].sum()
    top = max(1, len(order) // 10)
    return {
        "player": player,
        "positions": len(positions),
        "temperatures": temps,
        "mean_reward": {t: float(np.nanmean(rewards[t])) for t in temps},
        "best_move_reward": float(np.nanmean(best)),
        "low_T": low,
        "mean_gain_low_vs_T1": float(np.nanmean(gain)),
        "share_of_positive_gain_in_top10pct": float(order[:top].clip(min=0).sum() / pos_total)
        if pos_total > 0
        else float("nan"),
        "positions_gaining": int((gain > 0.01).sum()),
        "positions_losing": int((gain < -0.01).sum()),
        "gains_sorted": order.tolist(),
        "per_position": [
            {
                "game": positions[j].game_id,
                "ply": len(positions[j].sans),
                "fen": positions[j].board.fen(),
                **{f"R(T={t:g})": rewards[t][j] for t in temps},
            }
            for j in range(len(positions))
        ],
    }


def run_diversity(
    corpora: Sequence[Path], plies: int, min_count: int, max_games: int | None, name: str
) -> str:
    """`lab chess analyze diversity`: table + histogram per corpus in a run directory; returns the table."""
    from lab_shared.report import markdown_table, save_figure, write_table
    from lab_shared.rundir import RunDir

    run = RunDir.create(
        "chess-analyze",
        name,
        {
            "corpora": [str(c) for c in corpora],
            "plies": plies,
            "min_count": min_count,
            "max_games": max_games,
        },
    )
    results = [diversity(c, plies, min_count, max_games) for c in corpora]
    rows = [
        {k: r[k] for k in ("corpus", "games", "positions", "mean_entropy", "median_entropy")} for r in results
    ]
    write_table(rows, run.file("diversity"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for r in results:
        if r["entropies"]:
            ax.hist(
                r["entropies"],
                bins=20,
                range=(0, 1),
                alpha=0.5,
                label=f"{Path(r['corpus']).name} (n={r['positions']})",
            )
    ax.set_xlabel(f"normalised move entropy (positions in first {plies} plies seen > {min_count} times)")
    ax.set_ylabel("positions")
    ax.set_title("Dataset diversity")
    ax.legend(fontsize=8)
    save_figure(fig, run.plots / "diversity.png")
    run.write_results({"corpora": results})
    return markdown_table(rows) + f"\nrun: {run.path}"


def run_rewards(
    run_dir: Path,
    model_dir: Path,
    player: str | None,
    temperatures: Sequence[float],
    depth: int,
    max_positions: int,
    stockfish: str | None,
    device: str,
    name: str,
) -> str:
    """`lab chess analyze rewards`: reward analysis of a model's recorded games, with two plots."""
    import numpy as np

    from lab_shared.device import choose_device
    from lab_shared.report import line_plot, markdown_table, write_table
    from lab_shared.rundir import RunDir
    from lab_transcendence.arena import read_records
    from lab_transcendence.engines import EngineSettings, open_pool
    from lab_transcendence.loading import load_any

    for t in temperatures:
        if not t > 0:
            raise LabError(f"temperature must be > 0, got {t}")
    records = [r for r in read_records(Path(run_dir) / "games.jsonl") if r["result"] != "*"]
    if not records:
        raise LabError(f"no recorded games in {run_dir}/games.jsonl")
    if player is None:
        names = [n for r in records for n in (r["white"], r["black"]) if "@T" in n]
        if not names:
            raise LabError("no model player in those games: pass --player NAME")
        player = names[0]
    _kind, model, tok, _ = load_any(model_dir, choose_device(device))
    run = RunDir.create(
        "chess-analyze",
        name,
        {
            "run": str(run_dir),
            "model": str(model_dir),
            "player": player,
            "temperatures": list(temperatures),
            "depth": depth,
        },
    )
    with open_pool(stockfish, size=1) as pool:
        res = reward_analysis(
            records, player, model, tok, pool, EngineSettings(depth=depth), temperatures, max_positions
        )
    temps = res["temperatures"]
    rows = [{"T": t, "mean expected score": res["mean_reward"][t]} for t in temps]
    rows.append({"T": "best move", "mean expected score": res["best_move_reward"]})
    write_table(rows, run.file("rewards"))
    write_table(res["per_position"], run.file("rewards_per_position"))
    line_plot(
        run.plots / "reward_vs_temperature.png",
        {player: (temps, [res["mean_reward"][t] for t in temps])},
        "temperature",
        "mean expected score (Stockfish WDL)",
        title="Reward against temperature",
        hlines={"best legal move": res["best_move_reward"]},
        logx=True,
    )
    g = np.array(res["gains_sorted"])
    pos = np.clip(g, 0, None)
    share = np.cumsum(pos) / pos.sum() if pos.sum() > 0 else np.zeros_like(pos)
    line_plot(
        run.plots / "gain_concentration.png",
        {"cumulative share of gain": (list(np.arange(1, len(g) + 1) / max(1, len(g))), list(share))},
        "fraction of positions (largest gain first)",
        f"share of T={res['low_T']:g} vs T=1 gain",
        title="Where low temperature gains",
    )
    summary = {k: v for k, v in res.items() if k not in ("per_position", "gains_sorted")}
    run.write_results(summary)
    return (
        markdown_table(rows) + f"\nmean gain T={res['low_T']:g} vs T=1: {res['mean_gain_low_vs_T1']:.4f}; "
        f"top 10% of positions hold {res['share_of_positive_gain_in_top10pct']:.0%} of the positive gain; "
        f"{res['positions_gaining']} positions gain, {res['positions_losing']} lose\nrun: {run.path}"
    )

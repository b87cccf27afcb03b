"""Ingest speed: `lab chess data lichess` vs python-chess `read_game` on the same Lichess-style PGN file.

The file is built from the synthetic corpus (Stockfish experts; cached under runs/bench-cache), written the
way the Lichess database writes games: 17 headers, `[%clk]` comments after every move. Its games repeat the
corpus with fresh headers and clocks to reach the target size. Both sides read the same file: python-chess
parses the first --baseline-games games (its rate is steady), our ingest does the whole file (filter on
ratings, transcript conversion, tokenization, shards) with 1 process and with every core.

  .venv/bin/python benchmarks/chess_ingest.py            # ~1-2 minutes on 2 cores
  .venv/bin/python benchmarks/chess_ingest.py --full     # a bigger file
Target: >= 15x python-chess read_game (games per second).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import chess.pgn

ROOT = Path(__file__).resolve().parents[1]


def corpus_games(n_unique: int, cache: Path) -> list[tuple[list[str], str]]:
    """(SAN moves, result) of a synthetic corpus (made once, then cached)."""
    from lab_shared.errors import LabError
    from lab_shared.tools import find_stockfish
    from lab_transcendence.synth import SynthSettings, generate_corpus

    out = cache / f"synth-{n_unique}"
    settings = SynthSettings(players=4, games=n_unique, seed=0, depth=1, rating_games=0)
    try:
        generate_corpus(out, settings, find_stockfish(), workers=os.cpu_count() or 1, show_progress=False)
    except LabError:  # a cache from an older version: make it again
        generate_corpus(
            out, settings, find_stockfish(), workers=os.cpu_count() or 1, show_progress=False, force=True
        )
    games = []
    with open(out / "games.pgn") as fh:
        while (g := chess.pgn.read_game(fh)) is not None:
            board, sans = g.board(), []
            for m in g.mainline_moves():
                sans.append(board.san(m))
                board.push(m)
            games.append((sans, g.headers["Result"]))
    return games


def write_file(path: Path, games: list[tuple[list[str], str]], n_games: int) -> None:
    from lab_transcendence.lichess import lichess_style_game

    with open(path, "w") as fh:
        for i in range(n_games):
            sans, result = games[i % len(games)]
            fh.write(lichess_style_game(sans, result, i, 600 + (i * 37) % 1400, 600 + (i * 53) % 1400))


def bench_python_chess(path: Path, n: int) -> float:
    """games/s of chess.pgn.read_game over the first n games."""
    t0 = time.perf_counter()
    k = 0
    with open(path) as fh:
        while k < n and chess.pgn.read_game(fh) is not None:
            k += 1
    return k / (time.perf_counter() - t0)


def bench_ours(path: Path, workers: int, tmp: Path, max_elo: int | None) -> tuple[float, dict]:
    from lab_transcendence.lichess import IngestFilters, ingest

    out = tmp / f"out-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    meta = ingest(
        path, out, IngestFilters(max_elo=max_elo), workers=workers, block_chars=4 << 20, show_progress=False
    )
    return meta["games_seen"] / (time.perf_counter() - t0), meta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--games", type=int, default=None, help="games in the benchmark file")
    p.add_argument("--unique", type=int, default=200, help="synthetic games generated (then repeated)")
    p.add_argument("--baseline-games", type=int, default=1500)
    p.add_argument("--full", action="store_true")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench-cache")
    args = p.parse_args()
    n_games = args.games or (200_000 if args.full else 25_000)
    games = corpus_games(args.unique, args.cache)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path = tmp / "lichess-style.pgn"
        write_file(path, games, n_games)
        size_mb = path.stat().st_size / 1e6
        sample = path.read_text()[:1500]
        assert re.search(r"\[%clk \d+:\d\d:\d\d\]", sample) and "[WhiteElo" in sample
        # the two paths agree on this file (python-chess replay inside our ingest): checked on a slice
        head = tmp / "head.pgn"
        head.write_text("".join(io.StringIO(path.read_text()[:400_000]).readlines()[:-40]))
        from lab_transcendence.lichess import IngestFilters, ingest

        checked = ingest(head, tmp / "val", IngestFilters(), validate=True, show_progress=False)
        base_before = bench_python_chess(path, args.baseline_games)
        cores = os.cpu_count() or 1
        # every game converted (no rating filter): the conservative figure
        ours1, meta = bench_ours(path, 1, tmp, None)
        oursn, _ = bench_ours(path, cores, tmp, None) if cores > 1 else (ours1, meta)
        # the paper's ChessFormer-1000 filter: most games are dropped on their headers
        capped, meta_c = bench_ours(path, cores, tmp, 1000)
        # the baseline again, after ours: the best of the two (a shared machine's load varies)
        base = max(base_before, bench_python_chess(path, args.baseline_games))
    res = {
        "file_mb": round(size_mb, 1),
        "games": n_games,
        "kept_no_filter": meta["games_kept"],
        "kept_max_elo_1000": meta_c["games_kept"],
        "python_chess_read_game_games_per_s": round(base),
        "ours_1_process_games_per_s": round(ours1),
        f"ours_{cores}_processes_games_per_s": round(oursn),
        "ratio_1_process": round(ours1 / base, 1),
        f"ratio_{cores}_processes": round(oursn / base, 1),
        f"ours_max_elo_1000_{cores}_processes_games_per_s": round(capped),
        "ratio_max_elo_1000": round(capped / base, 1),
        "validation_mismatches": checked["validation_mismatches"],
        "validated_games": checked["games_kept"],
    }
    print(json.dumps(res, indent=2))
    print(
        f"RESULT chess_ingest: {oursn / base:.1f}x python-chess read_game ({oursn:,.0f} vs {base:,.0f} games/s, "
        f"{cores} processes, every game converted; 1 process {ours1 / base:.1f}x; with --max-elo 1000 "
        f"{capped / base:.0f}x) (target: >= 15x)"
    )


if __name__ == "__main__":
    main()

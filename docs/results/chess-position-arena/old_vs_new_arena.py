"""The arena benchmark (same protocol as benchmarks/chess_position.py's bench_arena) on the position player
as it was before this round (commit 636103b), for a before/after under the same measurement.

    mkdir -p /tmp/uci_helper/old && git show 636103b:packages/transcendence/src/lab_transcendence/position_player.py \
        > /tmp/uci_helper/old/old_position_player.py
    flock /tmp/lab-heavy.lock nice -n 5 .venv/bin/python docs/results/chess-position-arena/old_vs_new_arena.py
"""
import sys
sys.path.insert(0, "/work/main/benchmarks"); sys.path.insert(0, "/tmp/uci_helper/old")
import torch
torch.set_num_threads(1)
import lab_transcendence.position_player as pp
from old_position_player import PositionPlayer as Old
from chess_position import bench_arena
from lab_transcendence.position_model import PositionConfig, PositionPolicy
for label, cls in (("old", Old), ("new", pp.PositionPlayer)):
    torch.manual_seed(0)
    model = PositionPolicy(PositionConfig()).eval()
    saved = pp.PositionPlayer; pp.PositionPlayer = cls
    try:
        r = bench_arena(model)
    finally:
        pp.PositionPlayer = saved
    t = r["two_threads"]
    print(f"{label}: 1 thread batched {r['batched_moves_per_s']:.0f}/s single {r['single_moves_per_s']:.0f}/s ratio {r['ratio']:.2f}x identical {r['identical']}/{r['moves']}; "
          f"2 threads {t['batched_moves_per_s']:.0f}/s vs {t['single_moves_per_s']:.0f}/s ratio {t['ratio']:.2f}x", flush=True)

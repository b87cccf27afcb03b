"""Per-part seconds of the new select path over the bench's 960 moves: batched vs one game at a time."""
import time, random
import torch, chess, numpy as np
torch.set_num_threads(1)
from lab_transcendence.position_model import PositionConfig, PositionPolicy
from lab_transcendence.position_player import PositionPlayer, legal_batch, sample_padded
from lab_transcendence.position_inference import encode_batch
from lab_transcendence.board import encode
from lab_transcendence.player import _rng
torch.manual_seed(0)
model = PositionPolicy(PositionConfig()).eval()
rng = random.Random(1); plies = 60; games = 32
bpp = [[] for _ in range(plies)]
for _ in range(games):
    b = chess.Board()
    for p in range(plies):
        legal = list(b.legal_moves)
        if not legal: b = chess.Board(); legal = list(b.legal_moves)
        bpp[p].append(b.copy(stack=False)); b.push(rng.choice(legal))
player = PositionPlayer(model, 0.001); P = time.perf_counter
def chunk(boards, T):
    t = P(); enc = encode(boards[0])[None] if len(boards) == 1 else encode_batch(boards); T["encode"] += P() - t
    t = P(); first = {}; inverse = np.array([first.setdefault(r.tobytes(), len(first)) for r in enc], dtype=np.int64)
    uniq = enc if len(first) == len(enc) else enc[np.unique(inverse, return_index=True)[1]]; T["dedup"] += P() - t
    t = P(); logits = player.fast(uniq); T["network"] += P() - t
    t = P(); moves, idx, valid = legal_batch(boards); T["legal"] += P() - t
    t = P(); picked = logits[torch.from_numpy(inverse)[:, None], torch.from_numpy(idx)].double() / 0.001
    picked = picked.masked_fill(~torch.from_numpy(valid), float("-inf")); lp = torch.log_softmax(picked, 1).numpy(); T["mask+softmax"] += P() - t
    t = P(); counts = np.array([len(m) for m in moves]); u = np.array([_rng(7, 3, 0).random() for _ in boards])
    k = sample_padded(lp, u, counts); [m[j] for m, j in zip(moves, k)]; T["sample"] += P() - t
for label, groups in (("batched", bpp[::2]), ("one game at a time", [[b] for bs in bpp[::2] for b in bs])):
    for rep in range(2):
        T = dict.fromkeys(["encode", "dedup", "network", "legal", "mask+softmax", "sample"], 0.0)
        t0 = P()
        for g in groups: chunk(g, T)
        tot = P() - t0
    print(f"{label}: total {tot*1e3:.0f} ms for 960 moves; " + ", ".join(f"{k} {v*1e3:.0f}" for k, v in T.items()) + f"; non-network {(tot - T['network'])/960*1e3:.3f} ms/move", flush=True)

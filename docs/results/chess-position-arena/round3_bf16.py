"""Forward-only: fp32 direct (folded, channels-last) vs fp32 Winograd vs bf16 autocast direct, batch 32 and 1;
bf16's greedy agreement with fp32 over the bench positions."""
import sys, time, random
import torch, chess, numpy as np
torch.set_num_threads(1)
from lab_transcendence.position_model import PositionConfig, PositionPolicy
from lab_transcendence.position_inference import FastPolicy, encode_batch
from lab_transcendence.moves import legal_indices
torch.manual_seed(0)
model = PositionPolicy(PositionConfig()).eval()
rng = random.Random(1); boards=[]; b=chess.Board()
while len(boards) < 960:
    if b.is_game_over() or b.ply() > 120: b=chess.Board()
    boards.append(b.copy(stack=False)); b.push(rng.choice(list(b.legal_moves)))
enc = encode_batch(boards)
fw = FastPolicy(model, 1); fd = FastPolicy(model, 10**9)
def bf16(e):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return fd.net(torch.from_numpy(e)).float()
def t(f, bs, reps):
    e = enc[:bs]; f(e); f(e); best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps): f(e)
        best = min(best, (time.perf_counter() - t0) / reps * 1e3)
    return best
for bs in (1, 32):
    reps = 200 if bs == 1 else 20
    print(f"bs {bs}: fp32 direct {t(fd, bs, reps):.3f} ms, fp32 winograd {t(fw, bs, reps):.3f} ms, bf16 direct {t(bf16, bs, reps):.3f} ms", flush=True)
with torch.inference_mode():
    a = fd(enc); w = fw(enc); h = bf16(enc)
agree_w = agree_h = 0
for i, bd in enumerate(boards):
    _, ix = legal_indices(bd); ix = torch.from_numpy(ix)
    r = int(a[i, ix].argmax()); agree_w += int(w[i, ix].argmax()) == r; agree_h += int(h[i, ix].argmax()) == r
print(f"greedy agreement with fp32 direct over {len(boards)} positions: winograd {agree_w}, bf16 {agree_h}; max |logit diff| winograd {(w-a).abs().max():.2e}, bf16 {(h-a).abs().max():.2e} (logit scale {a.abs().max():.2f})")

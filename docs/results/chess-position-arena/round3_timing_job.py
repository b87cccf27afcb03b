"""Combined timing job (under /tmp/lab-heavy2): the full benchmark at the default configuration, the arena
with the direct convolution only, forward times by batch size, bf16 vs fp32, the new code's per-part breakdown."""
import sys, time, random, subprocess
sys.path.insert(0, "/work/main/benchmarks")
print(time.strftime("%H:%M:%S UTC", time.gmtime()), "start; commit", subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(), flush=True)
import torch, chess, numpy as np
torch.set_num_threads(1)
import chess_position
print("## .venv/bin/python benchmarks/chess_position.py  (default: Winograd for batches >= 2)", flush=True)
sys.argv = ["chess_position.py"]
chess_position.main()
print(time.strftime("%H:%M:%S UTC", time.gmtime()), flush=True)
from lab_transcendence.position_model import PositionConfig, PositionPolicy
import lab_transcendence.position_inference as pi
from lab_transcendence.position_inference import FastPolicy, encode_batch
torch.manual_seed(0)
model = PositionPolicy(PositionConfig()).eval()
saved = pi.WINOGRAD_MIN_BATCH
pi.WINOGRAD_MIN_BATCH = 10**9
r = chess_position.bench_arena(model)
pi.WINOGRAD_MIN_BATCH = saved
t = r["two_threads"]
print(f"## arena, direct convolution at every batch size: 1 thread batched {r['batched_moves_per_s']:.0f}/s single {r['single_moves_per_s']:.0f}/s = {r['ratio']:.2f}x identical {r['identical']}/{r['moves']}; network alone {r['moves']/r['forward_batched_s']:.0f}/s vs {r['moves']/r['forward_single_s']:.0f}/s = {r['forward_single_s']/r['forward_batched_s']:.2f}x; 2 threads {t['batched_moves_per_s']:.0f}/s vs {t['single_moves_per_s']:.0f}/s = {t['ratio']:.2f}x", flush=True)
torch.set_num_threads(1)
rng = random.Random(1); boards=[]; b=chess.Board()
while len(boards) < 256:
    if b.is_game_over(): b=chess.Board()
    boards.append(b.copy(stack=False)); b.push(rng.choice(list(b.legal_moves)))
enc = encode_batch(boards)
fw = FastPolicy(model, 1); fd = FastPolicy(model, 10**9)
def tm(f, bs, reps):
    e = enc[:bs]; f(e); f(e); best = 1e9
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(reps): f(e)
        best = min(best, (time.perf_counter() - t0) / reps * 1e3)
    return best
print("## network alone (encodings -> logits), ms per call", flush=True)
for threads in (1, 2):
    torch.set_num_threads(threads)
    for bs in (1, 2, 4, 8, 16, 32, 64, 128):
        reps = max(10, 300 // bs)
        a = tm(fd, bs, reps); w = tm(fw, bs, reps)
        print(f"threads {threads} batch {bs}: direct {a:.3f} ({a/bs:.3f}/position)  winograd {w:.3f} ({w/bs:.3f}/position)  direct/winograd {a/w:.2f}", flush=True)
torch.set_num_threads(1)
print(time.strftime("%H:%M:%S UTC", time.gmtime()), flush=True)
for script in ("/tmp/cp_prof/t5.py", "/tmp/cp_prof/brk2.py"):
    print("##", script, flush=True)
    subprocess.run([sys.executable, script], timeout=120)
    print(time.strftime("%H:%M:%S UTC", time.gmtime()), flush=True)
print("end", flush=True)

#!/usr/bin/env bash
# GPU run of the paper's transcript GPT with a corpus move vocabulary, on the pre-tokenized corpus carried with
# the tree (data/gpu-corpus/, made here by benchmarks/gpu_chess_corpus.sh; no network or Stockfish needed there).
#
#   bash benchmarks/gpu_chess.sh [OUT_DIR]                  (default: $OUT, else runs/gpu_chess)
#   GPU_CHESS_TINY=1 bash benchmarks/gpu_chess.sh /tmp/x    (CPU check: arguments, data loading, 2 steps)
#   device tool: run(command="bash benchmarks/gpu_chess.sh $OUT", carry=["data/gpu-corpus"], timeout_s=600)
#
# 1. train: `lab chess train --data data/gpu-corpus/corpus` (vocab tokenizer read from the folder's vocab.json;
#    8 layers x 384, context 255 tokens ~ 2 games, dropout 0.1, bf16 + torch.compile), exported to OUT/model;
# 2. eval on held-out games (the 2% the training run held out): per move, -log p(data move | legal moves) at
#    T = 1 vs uniform over the legal moves, T -> 0 (argmax) agreement with the data move, and the paper
#    policy's first-sample legal rate and forfeits (T = 0.001, 5 samples);
# 3. when a Stockfish binary is there (LAB_STOCKFISH, PATH, /usr/games, data/gpu-corpus/bin/stockfish): a short
#    `lab chess transcend --design pool` against the corpus's experts.
# Everything goes to OUT_DIR: env.txt, train.log, results.json, eval.json, summary.txt (the RESULT line).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_chess_env.sh
OUT_DIR="${1:-${OUT:-runs/gpu_chess}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
DATA="${GPU_CHESS_DATA:-$GPU_CORPUS/corpus}"
export LAB_RUNS="$OUT_DIR/runs" HF_HUB_OFFLINE=1 LAB_PROGRESS=0 PYTHONUNBUFFERED=1
NCPU="$(nproc)"

if [ "${GPU_CHESS_TINY:-0}" = "1" ]; then
  export OMP_NUM_THREADS=1
  TRAIN=(--preset tiny --max-steps 2 --batch-size 2 --block-size 31 --device cpu --set trainer.eval_every=1
         --set eval_batches=1 --set trainer.progress=false)
  EVAL_GAMES=3; EVAL_PLIES=8; DEVICE=cpu
else
  TRAIN=(--preset small --set n_layer=8 --set n_head=8 --set n_embd=384 --set dropout=0.1 --block-size 255
         --batch-size 64 --max-steps "${STEPS:-1500}" --lr 6e-4 --device cuda --set trainer.warmup_steps=100
         --set trainer.lr_decay_steps="${STEPS:-1500}" --set trainer.min_lr=6e-5 --set trainer.eval_every=250
         --set eval_batches=40 --set trainer.ckpt_every=500 --set trainer.log_every=50
         --set trainer.progress=false)
  EVAL_GAMES=120; EVAL_PLIES=80; DEVICE=cuda
fi
[ -f "$DATA/meta.json" ] || { echo "error: no pre-tokenized corpus at $DATA (run benchmarks/gpu_chess_corpus.sh here)" >&2; exit 2; }

{
  echo "== gpu_chess $(date -u +%FT%TZ) on $(hostname), $NCPU cores, python $PY"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU"
  "$PY" -c "import torch, chess; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'chess', chess.__version__)"
  "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print('corpus:', m['games_kept'], 'games,', m['tokens'], 'tokens,', m['vocab_size'], 'ids')" "$DATA/meta.json"
} 2>&1 | tee "$OUT_DIR/env.txt"

t0=$(date +%s)
labchess train --data "$DATA" --name gpu "${TRAIN[@]}" 2>&1 | tee "$OUT_DIR/train.log"
RUN="$(ls -d "$LAB_RUNS"/chess-train/gpu-* | tail -n 1)"
cp "$RUN/results.json" "$OUT_DIR/results.json"
cp "$RUN/metrics.jsonl" "$OUT_DIR/metrics.jsonl" 2>/dev/null || true
t1=$(date +%s)

# 2. held-out games: the same split as the training run's validation loss (split_games, seed 0)
"$PY" - "$RUN/model" "$DATA" "$OUT_DIR/eval.json" "$EVAL_GAMES" "$EVAL_PLIES" "$DEVICE" <<'EOF' 2>&1 | tee "$OUT_DIR/eval.log"
import json, math, sys, time
import chess, numpy as np, torch
from lab_transcendence.arena import MoveRequest
from lab_transcendence.blocks import split_games
from lab_transcendence.export import load_model
from lab_transcendence.lichess import load_games
from lab_transcendence.player import ModelPlayer

folder, data, out, n_games, max_plies, device = sys.argv[1:7]
device = device if device != "cuda" or torch.cuda.is_available() else "cpu"
model, tok, _ = load_model(folder, device)
games, _ = load_games(data)
_, val = split_games(games, 0.02, seed=0)
sans = [[w for w in tok.split_words(np.asarray(g)) if w != ";"][: int(max_plies)] for g in val[: int(n_games)]]
masked = ModelPlayer(model, tok, 1.0, "masked", max_batch=64)  # T = 1: the model's own p(move | legal)
paper = ModelPlayer(model, tok, 0.001, "paper", max_batch=64)
nll = unif = agree = first_legal = forfeits = n = 0
t0 = time.perf_counter()
boards = [chess.Board() for _ in sans]
for ply in range(max(len(s) for s in sans)):
    live = [g for g, s in enumerate(sans) if ply < len(s)]
    reqs = [MoveRequest(f"g{g}", boards[g], sans[g][:ply], g) for g in live]
    scored = masked.legal_logprobs(reqs)
    decided = paper.select(reqs)
    for g, (moves, lp), d in zip(live, scored, decided):
        truth = boards[g].parse_san(sans[g][ply])
        k = moves.index(truth)
        nll -= lp[k]; unif += math.log(len(moves)); agree += int(np.argmax(lp) == k)
        first_legal += int(d.illegal == 0 and not d.forfeit); forfeits += int(d.forfeit); n += 1
        boards[g].push(truth)
res = {"games": len(sans), "positions": n, "nll_legal_nats": nll / n, "uniform_legal_nats": unif / n,
       "agreement_t0": agree / n, "paper_first_sample_legal": first_legal / n, "paper_forfeits": forfeits / n,
       "seconds": round(time.perf_counter() - t0, 1), "device": str(device)}
json.dump(res, open(out, "w"), indent=2)
print(json.dumps(res))
EOF
t2=$(date +%s)

# 3. games against the experts, when a Stockfish binary came along
SF="${LAB_STOCKFISH:-$(command -v stockfish || true)}"
[ -n "$SF" ] || for c in /usr/games/stockfish "$GPU_CORPUS/bin/stockfish"; do [ -x "$c" ] && SF="$c" && break; done
if [ -n "$SF" ] && [ "${GPU_CHESS_TINY:-0}" != "1" ]; then
  LAB_STOCKFISH="$SF" labchess transcend --model "$RUN/model" --design pool --temperatures 0.001,0.3,1 \
    --selection-games 8 --confirm-games 30 --h2h-games 60 --positions 200 --position-depth 8 \
    --engines $(( NCPU > 4 ? NCPU - 2 : 2 )) --concurrency 64 --device "$DEVICE" --name gpu 2>&1 | tail -n 30 \
    | tee "$OUT_DIR/transcend.log" || echo "transcend failed (see transcend.log)"
else
  echo "no Stockfish here (or tiny mode): no games against the experts" | tee "$OUT_DIR/transcend.log"
fi
t3=$(date +%s)

"$PY" - "$OUT_DIR" "$((t1 - t0))" "$((t2 - t1))" "$((t3 - t2))" <<'EOF' | tee "$OUT_DIR/summary.txt"
import json, sys
from pathlib import Path
d = Path(sys.argv[1]); r = json.loads((d / "results.json").read_text()); e = json.loads((d / "eval.json").read_text())
print(f"train {sys.argv[2]} s, eval {sys.argv[3]} s, transcend {sys.argv[4]} s")
print(f"RESULT gpu_chess: {r['params']:,} params ({r['embedding_params']:,} in embeddings, vocab {r['vocab_size']:,}), "
      f"step {r['step']}, val loss {r['val_loss'] or float('nan'):.3f} nats/token, {r['tokens_per_s']:,.0f} tokens/s on {r['device']}; "
      f"held-out {e['positions']:,} positions: -log p(move|legal) {e['nll_legal_nats']:.2f} nats "
      f"(uniform {e['uniform_legal_nats']:.2f}), T->0 agreement {e['agreement_t0']:.1%}, "
      f"paper policy first sample legal {e['paper_first_sample_legal']:.1%}, forfeits {e['paper_forfeits']:.1%}")
EOF

#!/usr/bin/env bash
# GPU check for chess-data: training throughput of `lab chess train` vs HF GPT-2, then the real command.
#
#   bash benchmarks/gpu_chess_train.sh [OUT_DIR]              (default: $OUT, else runs/gpu_chess_train)
#   GPU_CHESS_TRAIN_TINY=1 bash benchmarks/gpu_chess_train.sh /tmp/x   (CPU smoke path, tiny everything)
#
# About 4-6 minutes on one H100/H200:
#   1. benchmarks/chess_train.py at the paper's shape (50m: 16 layers, 8 heads, d 512, context 1023),
#      batch 32 x 1023, bf16 + torch.compile: tokens/s of ours vs GPT2LMHeadModel, ratio, MFU.
#   2. `lab chess data lichess` on random legal games (python-chess; no Stockfish needed on the GPU box), a
#      corpus move vocabulary (`lab chess data vocab`, `data tokenize`: uint16 shards),
#      `lab chess train --preset 50m` on it for 150 steps (checkpoint at 100), resumed to 200, and a
#      torchrun (DDP, 1 process) run: loss, tokens/s, the resume and DDP paths on CUDA.
# No network or installed lab needed there: benchmarks/gpu_chess_env.sh (python-chess from data/gpu-corpus/site,
# carried with `carry: ["data/gpu-corpus"]`).
# Everything goes to OUT_DIR: chess_train.json, train logs, results.json of each run, summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_chess_env.sh
OUT_DIR="${1:-${OUT:-runs/gpu_chess_train}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
export LAB_RUNS="$OUT_DIR/runs" HF_HUB_OFFLINE=1 LAB_PROGRESS=0
NCPU="$(nproc)"

if [ "${GPU_CHESS_TRAIN_TINY:-0}" = "1" ]; then
  BENCH=(--device cpu --preset tiny --batch-size 2 --steps 2 --warmup 1)
  GAMES=60; PRESET=tiny; BATCH=4; S1=6; S0=4; S2=8; DEVICE=cpu
else
  BENCH=(--device cuda --preset 50m --batch-size 32 --steps 50 --warmup 10)
  GAMES=3000; PRESET=50m; BATCH=32; S1=150; S0=100; S2=200; DEVICE=cuda
fi

{
  echo "== gpu_chess_train $(date -u +%FT%TZ) on $(hostname)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$OUT_DIR/env.txt"

t0=$(date +%s)
# 1. throughput: ours (core Trainer) vs HF GPT2LMHeadModel (hand loop), same shape/batch/precision/compile
"$PY" benchmarks/chess_train.py "${BENCH[@]}" --out "$OUT_DIR" 2>&1 | tee "$OUT_DIR/chess_train.log"
t1=$(date +%s)

# 2. data: random legal games written as a Lichess dump, ingested by the real command
"$PY" - "$OUT_DIR/random.pgn" "$GAMES" "$NCPU" <<'EOF'
import random, sys
from multiprocessing import Pool
import chess
from lab_transcendence.lichess import lichess_style_game

def game(i):
    rng, board, sans = random.Random(i), chess.Board(), []
    while not board.is_game_over() and len(sans) < 200:
        move = rng.choice(list(board.legal_moves))
        sans.append(board.san(move)); board.push(move)
    return lichess_style_game(sans, board.result() if board.is_game_over() else "1/2-1/2", i, 900, 950)

with Pool(int(sys.argv[3])) as pool, open(sys.argv[1], "w") as fh:
    for text in pool.imap(game, range(int(sys.argv[2])), chunksize=16):
        fh.write(text)
EOF
labchess data lichess "$OUT_DIR/random.pgn" --out "$OUT_DIR/games" --workers "$NCPU" --force 2>&1 | tee "$OUT_DIR/data.log"
labchess data vocab "$OUT_DIR/games" --out "$OUT_DIR/vocab.json" --min-count 5 2>&1 | tee -a "$OUT_DIR/data.log"
labchess data tokenize "$OUT_DIR/games" --vocab "$OUT_DIR/vocab.json" --out "$OUT_DIR/data" --force 2>&1 \
  | tee -a "$OUT_DIR/data.log"

# 3. the real training command: checkpoint, stop, resume; then DDP under torchrun
COMMON=(--data "$OUT_DIR/data" --preset "$PRESET" --batch-size "$BATCH" --device "$DEVICE"
        --set trainer.grad_accum=1 --set trainer.warmup_steps=20 --set trainer.ckpt_every="$S0" --set trainer.log_every=25)
labchess train "${COMMON[@]}" --max-steps "$S1" --name gpu 2>&1 | tail -n 5 | tee "$OUT_DIR/train.log"
RUN="$(ls -d "$LAB_RUNS"/chess-train/gpu-* | tail -n 1)"
labchess train --resume "$RUN" --max-steps "$S2" 2>&1 | tail -n 3 | tee -a "$OUT_DIR/train.log"
cp "$RUN/results.json" "$OUT_DIR/train_results.json"
TORCHRUN="$(dirname "$PY")/torchrun"
[ -x "$TORCHRUN" ] || TORCHRUN="torchrun"
"$TORCHRUN" --standalone --nproc_per_node=1 --no-python "$PY" -c "$LABCHESS_CODE" train "${COMMON[@]}" \
  --max-steps 30 --name ddp 2>&1 \
  | tail -n 3 | tee "$OUT_DIR/ddp.log"
cp "$(ls -d "$LAB_RUNS"/chess-train/ddp-* | tail -n 1)/results.json" "$OUT_DIR/ddp_results.json"
t2=$(date +%s)

{
  echo "throughput benchmark: $((t1 - t0)) s; data + training runs: $((t2 - t1)) s"
  grep '^RESULT' "$OUT_DIR/chess_train.log" || echo "RESULT chess_train: missing"
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print('lab chess train:', {k: r[k] for k in ('step','train_loss','val_loss','tokens_per_s','device','params','tokenizer','vocab_size')})" "$OUT_DIR/train_results.json"
} | tee "$OUT_DIR/summary.txt"

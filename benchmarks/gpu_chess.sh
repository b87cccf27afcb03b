#!/usr/bin/env bash
# GPU check for chess-eval: synthetic experts -> train a char GPT -> transcendence table, in ~8 minutes.
#
#   bash benchmarks/gpu_chess.sh [OUT_DIR]        (default: $OUT, else runs/gpu_chess)
#   GPU_CHESS_TINY=1 bash benchmarks/gpu_chess.sh /tmp/x   (CPU smoke path: tiny everything, ~2 minutes)
#
# Budget on one H100/H200 (16 CPU cores): ~2 min synthetic games (CPU, parallel), ~3 min training
# (bf16, torch.compile), ~3 min of games against Stockfish for all temperatures and both policies.
# Everything it writes goes to OUT_DIR: corpus, model, transcend run (table, Figure 1, PGN), logs, summary.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-runs/gpu_chess}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY=".venv/bin/python"
[ -x "$PY" ] || PY="python"
LAB=".venv/bin/lab"
[ -x "$LAB" ] || LAB="lab"
export LAB_RUNS="$OUT_DIR/runs" HF_HUB_OFFLINE=1 LAB_PROGRESS=1
NCPU="$(nproc)"

if [ "${GPU_CHESS_TINY:-0}" = "1" ]; then
  SHAPE=(); export OMP_NUM_THREADS=1  # shared CPUs: one torch thread avoids oversubscription stalls
  PLAYERS=3; GAMES=40; RGAMES=2; CAL_GAMES=2; PRESET=tiny; STEPS=30; BATCH=8; GAMES_EVAL=2; TEMPS="0.001,1"; LEVELS="0,1"
  DEVICE=cpu; CONC=8; ENGINES=2
else
  # 4 experts, 8000 games (~4M characters); the `small` shape with the paper's context would be too slow to
  # converge in 3 minutes, so a 6-layer d-256 GPT at context 511 (bf16 + torch.compile: `compile` auto = on)
  PLAYERS=4; GAMES=8000; RGAMES=10; CAL_GAMES=20; PRESET=small; STEPS=2500; BATCH=64; GAMES_EVAL=20
  TEMPS="0.001,0.01,0.1,0.3,0.5,0.75,1,1.5"; LEVELS="0,1"; DEVICE=auto; CONC=64; ENGINES=$(( NCPU > 4 ? NCPU - 4 : 2 ))
  SHAPE=(--set n_layer=6 --set n_head=8 --set n_embd=256 --block-size 511)
fi

{
  echo "== gpu_chess $(date -u +%FT%TZ) on $(hostname)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$OUT_DIR/env.txt"

t0=$(date +%s)
# 1. corpus of synthetic experts (Stockfish-based, parallel over cores; deterministic for the seed)
"$LAB" chess data synth --players "$PLAYERS" --games "$GAMES" --rating-games "$RGAMES" --workers "$NCPU" \
  --out "$OUT_DIR/corpus" \
  2>&1 | tail -n 20 | tee "$OUT_DIR/synth.log"
t1=$(date +%s)
# 2. train (bf16 + torch.compile on GPU), export to a model folder
"$LAB" chess train --data "$OUT_DIR/corpus" --preset "$PRESET" --max-steps "$STEPS" --batch-size "$BATCH" \
  --device "$DEVICE" --name gpu "${SHAPE[@]}" 2>&1 | tail -n 20 | tee "$OUT_DIR/train.log"
MODEL="$(ls -d "$LAB_RUNS"/chess-train/gpu-*/model | tail -n 1)"
cp -r "$MODEL" "$OUT_DIR/model"
t2=$(date +%s)
# 3. anchors for the levels used (level 0 has no paper anchor): round robin, level 1 pinned at 1554
"$LAB" chess calibrate --levels 0,1,3 --games "$CAL_GAMES" --limit depth:level+1 --pin 1=1554 --engines "$ENGINES" \
  --concurrency 32 --out "$OUT_DIR/anchors.json" 2>&1 | tail -n 8 | tee "$OUT_DIR/calibrate.log"
# 4. the transcendence table: all temperatures, both legal-move policies, experts rated in the same arena
"$LAB" chess transcend --model "$OUT_DIR/model" --temperatures "$TEMPS" --games "$GAMES_EVAL" \
  --levels "$LEVELS" --limit depth:level+1 --concurrency "$CONC" --engines "$ENGINES" --device "$DEVICE" \
  --anchors "$OUT_DIR/anchors.json" --name gpu 2>&1 | tail -n 40 | tee "$OUT_DIR/transcend.log"
t3=$(date +%s)
# 5. batching ratio with the trained model (on the accelerator when there is one)
"$PY" benchmarks/chess_eval.py --model "$OUT_DIR/model" --device "$DEVICE" 2>&1 | tail -n 8 | tee "$OUT_DIR/bench.log" || true
t4=$(date +%s)
{
  echo "synth $((t1 - t0)) s, train $((t2 - t1)) s, transcend $((t3 - t2)) s, bench $((t4 - t3)) s"
  grep -h "transcends" "$OUT_DIR/transcend.log" || true
  grep -h "^RESULT" "$OUT_DIR/bench.log" || true
} | tee "$OUT_DIR/summary.txt"

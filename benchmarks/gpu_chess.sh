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
  PLAYERS=3; GAMES=40; PRESET=tiny; STEPS=30; BATCH=8; GAMES_EVAL=2; TEMPS="0.001,1"; LEVELS="1"
  DEVICE=cpu; CONC=8; ENGINES=2; EXTRA_TRAIN=()
else
  PLAYERS=5; GAMES=6000; PRESET=small; STEPS=3000; BATCH=64; GAMES_EVAL=20; TEMPS="0.001,0.01,0.1,0.3,0.5,0.75,1,1.5"
  LEVELS="1,3"; DEVICE=auto; CONC=64; ENGINES=$(( NCPU > 2 ? NCPU - 2 : 1 )); EXTRA_TRAIN=(--set trainer.compile=true)
fi

{
  echo "== gpu_chess $(date -u +%FT%TZ) on $(hostname)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$OUT_DIR/env.txt"

t0=$(date +%s)
# 1. corpus of synthetic experts (Stockfish-based, parallel over cores; deterministic for the seed)
"$LAB" chess data synth --players "$PLAYERS" --games "$GAMES" --workers "$NCPU" --out "$OUT_DIR/corpus" \
  2>&1 | tail -n 20 | tee "$OUT_DIR/synth.log"
t1=$(date +%s)
# 2. train (bf16 + torch.compile on GPU), export to a model folder
"$LAB" chess train --data "$OUT_DIR/corpus" --preset "$PRESET" --steps "$STEPS" --batch-size "$BATCH" \
  --device "$DEVICE" --out "$OUT_DIR/model" "${EXTRA_TRAIN[@]}" 2>&1 | tail -n 20 | tee "$OUT_DIR/train.log"
t2=$(date +%s)
# 3. the transcendence table: all temperatures, both legal-move policies, experts rated in the same arena
"$LAB" chess transcend --model "$OUT_DIR/model" --temperatures "$TEMPS" --games "$GAMES_EVAL" \
  --levels "$LEVELS" --limit depth:level+1 --concurrency "$CONC" --engines "$ENGINES" --device "$DEVICE" \
  --name gpu 2>&1 | tail -n 40 | tee "$OUT_DIR/transcend.log"
t3=$(date +%s)
# 4. batching ratio on this machine's accelerator
"$PY" benchmarks/chess_eval.py --model "$OUT_DIR/model" 2>&1 | tail -n 8 | tee "$OUT_DIR/bench.log" || true
t4=$(date +%s)
{
  echo "synth $((t1 - t0)) s, train $((t2 - t1)) s, transcend $((t3 - t2)) s, bench $((t4 - t3)) s"
  grep -h "transcends" "$OUT_DIR/transcend.log" || true
  grep -h "^RESULT" "$OUT_DIR/bench.log" || true
} | tee "$OUT_DIR/summary.txt"

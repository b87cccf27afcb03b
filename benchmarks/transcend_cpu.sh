#!/usr/bin/env bash
# Issue 11: from nothing to the transcendence table on a 2-core CPU, in one command sequence.
#
#   bash benchmarks/transcend_cpu.sh OUT_DIR
#
# Stages (each timed; on a shared machine prefix them with the heavy lock, see LOCK below):
#   1. synth     lab chess data synth --preset noisy        4 weak experts + the vote-vs-experts round robin
#   2. positions lab chess data positions                   corpus games -> (board, move) shards
#   3. train     lab chess train --model position           residual CNN policy, core trainer
#   4. transcend lab chess transcend --design pool          selection set, confirmation set, per-position
# Knobs (environment): GAMES (corpus games), VOTE_GAMES (round robin games a pair), STEPS (training steps of
# BATCH positions), BATCH, ARCH (--set options of the position model), SEL_GAMES / CONF_GAMES / H2H_GAMES, TSEED (transcend seed, default SEED), POSITIONS, TEMPS, LOCK (a command prefix for every
# stage, e.g. "flock /tmp/lab-heavy.lock nice -n 5"), LAB (the lab executable).
set -euo pipefail
OUT=${1:?usage: transcend_cpu.sh OUT_DIR}
LAB=${LAB:-lab}
LOCK=${LOCK:-}
GAMES=${GAMES:-3500}
VOTE_GAMES=${VOTE_GAMES:-20}
STEPS=${STEPS:-2500}
BATCH=${BATCH:-128}
ARCH=${ARCH:-"--set position.arch=cnn --set position.width=48 --set position.layers=4"}
SEL_GAMES=${SEL_GAMES:-12}
CONF_GAMES=${CONF_GAMES:-40}
H2H_GAMES=${H2H_GAMES:-100}
POSITIONS=${POSITIONS:-400}
TEMPS=${TEMPS:-0.001,0.1,0.3,1}
SEED=${SEED:-0}
TSEED=${TSEED:-$SEED}  # seed of the selection and confirmation games
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
export LAB_RUNS="$OUT/runs" HF_HUB_OFFLINE=1
: > "$OUT/stages.tsv"

stage() {  # stage NAME THREADS COMMAND...: run, log, time (the time starts once the lock is held)
  local name=$1 threads=$2
  shift 2
  echo "== $name: $*" | tee -a "$OUT/commands.txt"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$threads $LOCK /usr/bin/time -f "$name	%e" -a -o "$OUT/stages.tsv" "$@" 2>&1 | tee "$OUT/logs/$name.log"
}

stage synth 2 $LAB chess data synth --preset noisy --players 4 --games "$GAMES" --rating-games 0 \
  --vote-games "$VOTE_GAMES" --seed "$SEED" -j 2 --out "$OUT/corpus"
stage positions 2 $LAB chess data positions "$OUT/corpus" --out "$OUT/positions" -j 2
# shellcheck disable=SC2086
stage train 1 $LAB chess train --model position --data "$OUT/positions" --max-steps "$STEPS" --batch-size "$BATCH" \
  --seed "$SEED" $ARCH --set trainer.eval_every=200 --set trainer.progress=false --name transcend-cpu
RUN=$(ls -d "$LAB_RUNS"/chess-train/transcend-cpu-* | tail -1)
stage transcend 1 $LAB chess transcend --model "$RUN/model" --design pool --temperatures "$TEMPS" \
  --selection-games "$SEL_GAMES" --confirm-games "$CONF_GAMES" --h2h-games "$H2H_GAMES" \
  --positions "$POSITIONS" --position-depth 8 --engines 2 --concurrency 64 --device cpu --seed "$TSEED" \
  --name transcend-cpu
TRUN=$(ls -d "$LAB_RUNS"/chess-transcend/transcend-cpu-* | tail -1)
echo "train run: $RUN" > "$OUT/runs.txt"
echo "transcend run: $TRUN" >> "$OUT/runs.txt"
awk -F'\t' '{s += $2; print} END {printf "total\t%.1f\n", s}' "$OUT/stages.tsv"

#!/usr/bin/env bash
# Issue 11: from nothing to the transcendence table on a 2-core CPU, in one command sequence.
#
#   bash benchmarks/transcend_cpu.sh OUT_DIR
#
# Stages (each timed; on a shared machine prefix them with the heavy lock, see LOCK below):
#   1. synth     lab chess data synth --preset noisy        4 weak experts + the vote-vs-experts round robin
#   2. positions lab chess data positions                   corpus games -> (board, move) shards
#      (LABEL_EXPERTS=N > 0: the stage positions+labels, `--label-experts N` added: every expert's move in N
#      sampled corpus positions, N x 4 extra pairs; docs/chess-eval.md has the trade-off)
#   3. train     lab chess train --model position           residual CNN policy, core trainer
#   4. transcend lab chess transcend --design pool          selection set, confirmation set, per-position
# Knobs (environment): GAMES (corpus games), VOTE_GAMES (round robin games a pair), STEPS (training steps of
# BATCH positions), BATCH, ARCH (--set options of the position model), SEL_GAMES / CONF_GAMES / H2H_GAMES,
# TSEED (transcend seed, default SEED), POSITIONS, TEMPS, LABEL_EXPERTS (labelled positions, default 0 =
# games only), LABEL_SEED (default SEED), JOBS (-j of synth, positions, labels; default 2), CORPUS (an
# existing synth corpus made with the same GAMES/SEED: the synth stage is skipped), PIECE_S (run labels and
# train in pieces of at most this many seconds, each its own LOCK acquisition; training stops with an exact
# checkpoint and resumes bit for bit; default 0 = one piece), LOCK (a command prefix for every stage, e.g.
# "/tmp/lab-heavy1" or "flock /tmp/lab-heavy.lock nice -n 5"), LAB (the lab executable).
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
LABEL_EXPERTS=${LABEL_EXPERTS:-0}
LABEL_SEED=${LABEL_SEED:-$SEED}
JOBS=${JOBS:-2}
CORPUS=${CORPUS:-}
PIECE_S=${PIECE_S:-0}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
export LAB_RUNS="$OUT/runs" HF_HUB_OFFLINE=1
: > "$OUT/stages.tsv"

stage() {  # stage NAME THREADS COMMAND...: run, log, time (the time starts once the lock is held)
  local name=$1 threads=$2
  shift 2
  echo "== $name: $*" | tee -a "$OUT/commands.txt"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$threads $LOCK /usr/bin/time -q -f "$name	%e" -a -o "$OUT/stages.tsv" "${LIMIT[@]}" "$@" 2>&1 \
    | tee -a "$OUT/logs/$name.log"
  return "${PIPESTATUS[0]}"
}

LIMIT=()  # PIECE_S > 0: the time limit of one piece of the labels and train stages
piece() {  # piece NAME THREADS COMMAND...: one stage piece under LIMIT; returns 0, 124 (time is up), or fails
  local rc=0
  [ "$PIECE_S" -gt 0 ] && LIMIT=(timeout -s TERM "$PIECE_S")
  stage "$@" || rc=$?
  LIMIT=()
  case $rc in 0 | 124 | 143) return "$rc" ;; *) exit "$rc" ;; esac  # 143: the trainer's exact stop on SIGTERM
}

if [ -n "$CORPUS" ]; then
  CORPUS=$(cd "$CORPUS" && pwd)
  echo "== synth: skipped, reusing $CORPUS" | tee -a "$OUT/commands.txt"
else
  stage synth 2 $LAB chess data synth --preset noisy --players 4 --games "$GAMES" --rating-games 0 \
    --vote-games "$VOTE_GAMES" --seed "$SEED" -j "$JOBS" --out "$OUT/corpus"
  CORPUS=$OUT/corpus
fi
if [ "$LABEL_EXPERTS" -gt 0 ]; then  # replay + labels in one stage; the same command again resumes
  label=($LAB chess data positions "$CORPUS" --out "$OUT/positions" -j "$JOBS" --label-experts "$LABEL_EXPERTS"
    --label-seed "$LABEL_SEED")
  rc=124
  while [ "$rc" -ne 0 ]; do rc=0; piece positions+labels 1 "${label[@]}" || rc=$?; done
else
  stage positions 2 $LAB chess data positions "$CORPUS" --out "$OUT/positions" -j "$JOBS"
fi
# shellcheck disable=SC2086
train=($LAB chess train --model position --data "$OUT/positions" --max-steps "$STEPS" --batch-size "$BATCH"
  --seed "$SEED" $ARCH --set trainer.eval_every=200 --set trainer.progress=false --name transcend-cpu)
first_run() { ls -d "$LAB_RUNS"/chess-train/transcend-cpu-* 2>/dev/null | tail -1; }
rc=0
piece train 1 "${train[@]}" || rc=$?
while [ "$rc" -ne 0 ]; do  # a piece that stopped before its first checkpoint starts over
  rc=0
  if [ -e "$(first_run)/checkpoints/latest" ]; then
    piece train 1 $LAB chess train --resume "$(first_run)" || rc=$?
  else
    rm -rf "$(first_run)"
    piece train 1 "${train[@]}" || rc=$?
  fi
done
RUN=$(first_run)
stage transcend 1 $LAB chess transcend --model "$RUN/model" --design pool --temperatures "$TEMPS" \
  --selection-games "$SEL_GAMES" --confirm-games "$CONF_GAMES" --h2h-games "$H2H_GAMES" \
  --positions "$POSITIONS" --position-depth 8 --engines 2 --concurrency 64 --device cpu --seed "$TSEED" \
  --name transcend-cpu
TRUN=$(ls -d "$LAB_RUNS"/chess-transcend/transcend-cpu-* | tail -1)
echo "train run: $RUN" > "$OUT/runs.txt"
echo "transcend run: $TRUN" >> "$OUT/runs.txt"
# one row a stage (pieces summed), then the total
awk -F'\t' '{t[$1] += $2; if (!($1 in o)) {o[$1] = ++n; k[n] = $1}} END {for (i = 1; i <= n; i++) {
  printf "%s\t%.1f\n", k[i], t[k[i]]; s += t[k[i]]}; printf "total\t%.1f\n", s}' "$OUT/stages.tsv"

#!/usr/bin/env bash
# One imitation run in resumable pieces of <= 14 min on one core (the team's heavy-job wrapper):
#   bash docs/results/sched-families-distill/train.sh NAME [--set k=v ...]
# A piece stopped by its time limit (SIGTERM, exit 143) checkpoints; the next piece resumes it.
cd "$(dirname "$0")/../../.."
name=$1; shift
HEAVY=${HEAVY:-/tmp/lab-heavy1}
piece() { $HEAVY timeout -s TERM 840 .venv/bin/lab sched train --agent setnet "$@"; }
echo "[train $name] start $(date -u +%T)"
piece --name "$name" --steps 0 --seed 0 --quiet --set eval_every=50000 --set ckpt_every=50000 \
  --set val_instances=4 --set val_episodes=2 --set instances=200 \
  --set families=hotset,lookup,mixed,poisson,bursty,skew "$@"
rc=$?
RUN=$(ls -dt runs/sched-train/"$name"-* | head -1)
while [ $rc -eq 143 ]; do
  echo "[train $name] piece stopped at $(date -u +%T), resuming $RUN"
  piece --resume "$RUN" --quiet; rc=$?
done
echo "[train $name] done rc=$rc $(date -u +%T) $RUN"

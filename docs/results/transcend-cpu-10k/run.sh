#!/bin/bash
# Lead's follow-up of the issue-11 CPU run: same corpus and positions, 4x the training steps (10,000),
# transcend with seed 1 so selection and confirmation games are fresh.
set -euo pipefail
cd /work/main
OUT=/tmp/lead-tc
export LAB_RUNS=$OUT/runs HF_HUB_OFFLINE=1
LAB=/work/main/.venv/bin/lab
echo "lock $(date -u +%FT%TZ)" > $OUT/launch.txt
: > $OUT/stages.tsv
OMP_NUM_THREADS=1 /usr/bin/time -f "train	%e" -a -o $OUT/stages.tsv $LAB chess train --model position --data $OUT/positions --max-steps 10000 --batch-size 128 \
  --seed 0 --set position.arch=cnn --set position.width=48 --set position.layers=4 --set trainer.eval_every=500 --set trainer.progress=false --name transcend-cpu-10k > $OUT/train.log 2>&1
RUN=$(ls -d $LAB_RUNS/chess-train/transcend-cpu-10k-* | tail -1)
OMP_NUM_THREADS=1 /usr/bin/time -f "transcend	%e" -a -o $OUT/stages.tsv $LAB chess transcend --model $RUN/model --design pool --temperatures 0.001,0.1,0.3,1 \
  --selection-games 12 --confirm-games 40 --h2h-games 100 --positions 400 --position-depth 8 --engines 2 --concurrency 64 --device cpu --seed 1 \
  --name transcend-cpu-10k > $OUT/transcend.log 2>&1
echo "done $(date -u +%FT%TZ)" >> $OUT/launch.txt

#!/bin/bash
# Arm B at 10,000 steps: games + 60,000 positions x 4 expert labels (the positions+labels stage of the 2,500-step
# arm, 323 s), the same training and transcend commands as the 10k games-only run (seed 0, transcend seed 1).
set -u
cd /work/main
O=/tmp/lead10k/out; LAB=/work/main/.venv/bin/lab
export LAB_RUNS=$O/runs HF_HUB_OFFLINE=1
git -C /work/main rev-parse HEAD > $O/git_head.txt
echo "== train: start $(date -u +%FT%TZ)" >> $O/commands.txt
/usr/bin/time -f "train	%e" -a -o $O/stages.tsv $LAB chess train --model position --data /tmp/tl/B/out/positions \
  --max-steps 10000 --batch-size 128 --seed 0 --set position.arch=cnn --set position.width=48 --set position.layers=4 \
  --set trainer.eval_every=200 --set trainer.progress=false --name transcend-cpu > $O/logs/train.log 2>&1 || exit 1
RUN=$(ls -d $O/runs/chess-train/transcend-cpu-* | tail -1)
echo "== transcend: start $(date -u +%FT%TZ) $RUN" >> $O/commands.txt
/usr/bin/time -f "transcend	%e" -a -o $O/stages.tsv $LAB chess transcend --model $RUN/model --design pool \
  --temperatures 0.001,0.1,0.3,1 --selection-games 12 --confirm-games 40 --h2h-games 100 --positions 400 \
  --position-depth 8 --engines 2 --concurrency 64 --device cpu --seed 1 --name transcend-cpu > $O/logs/transcend.log 2>&1
echo "done rc $? $(date -u +%FT%TZ)" >> $O/commands.txt

#!/bin/bash
# Arm B of the expert-label ablation: games + 60,000 labelled positions (x 4 experts), 10,000 steps, transcend seed 1.
# The corpus is the one every earlier run used (synth --preset noisy --games 3500 --seed 0), reused to save its 259 s.
cd /work/main
export PYTHONPATH=/tmp/tl/snap/packages/transcendence/src:/tmp/tl/snap/shared/src  # code frozen at git_head.txt
echo "start $(date -u +%FT%TZ)" > /tmp/tl/B/launch.txt
LAB=/work/main/.venv/bin/lab LOCK=/tmp/lab-heavy1 CORPUS=/tmp/h11/out/pipeline/corpus LABEL_EXPERTS=60000 \
  STEPS=10000 TSEED=1 JOBS=1 PIECE_S=890 bash /tmp/tl/B/transcend_cpu.sh /tmp/tl/B/out > /tmp/tl/B/pipeline.log 2>&1
echo "pipeline rc $? $(date -u +%FT%TZ)" >> /tmp/tl/B/launch.txt

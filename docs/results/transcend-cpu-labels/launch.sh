#!/bin/bash
# Arm B at 2,500 steps: games + 60,000 labelled positions (x 4 experts, made by /tmp/tl/B's positions+labels stage,
# 323 s), the 2,500-step default training, transcend seed 0 -- arm A is docs/results/transcend-cpu (same settings).
# The whole pipeline inside ONE heavy-lock acquisition (LOCK empty inside), queued on core 1 (/tmp/lab-heavy1q:
# the same core locks as lab-heavy1, waiting in the queue instead of polling): the lock queue is long tonight.
cd /work/main
export PYTHONPATH=/tmp/tl/snap/packages/transcendence/src:/tmp/tl/snap/shared/src  # code frozen at git_head.txt
echo "start $(date -u +%FT%TZ)" > /tmp/tl/B25/launch.txt
LAB_CORE=1 /tmp/lab-heavy1q env LOCK= LAB=/work/main/.venv/bin/lab CORPUS=/tmp/h11/out/pipeline/corpus LABEL_EXPERTS=60000 \
  STEPS=2500 TSEED=0 JOBS=1 PIECE_S=0 bash /tmp/tl/B25/transcend_cpu.sh /tmp/tl/B25/out > /tmp/tl/B25/pipeline.log 2>&1
echo "pipeline rc $? $(date -u +%FT%TZ)" >> /tmp/tl/B25/launch.txt

#!/bin/bash
# Arm A at 2,500 steps: the games-only model of docs/results/transcend-cpu (run 2026-12-01 with older arena code),
# its transcend stage rerun with the code of arm B (git_head.txt) and the same seed (0), so both arms' pools
# hold the same expert and anchor games. Queued on both cores; the first to get one runs it (mkdir guard), and
# nothing starts at or after 03:30 UTC.
mkdir /tmp/tl/A25/started 2>/dev/null || exit 0
[ "$(date -u +%H%M)" -lt 0330 ] || { echo "too late $(date -u +%FT%TZ)" >> /tmp/tl/A25/launch.txt; exit 99; }
cd /work/main
export PYTHONPATH=/tmp/tl/snap/packages/transcendence/src:/tmp/tl/snap/shared/src LAB_RUNS=/tmp/tl/A25/runs HF_HUB_OFFLINE=1
echo "lock $(date -u +%FT%TZ) core $(taskset -pc $$ | awk '{print $NF}')" >> /tmp/tl/A25/launch.txt
CMD=(/work/main/.venv/bin/lab chess transcend --model /tmp/h11/out/pipeline/runs/chess-train/transcend-cpu-20261201-211851/model
  --design pool --temperatures 0.001,0.1,0.3,1 --selection-games 12 --confirm-games 40 --h2h-games 100 --positions 400
  --position-depth 8 --engines 2 --concurrency 64 --device cpu --seed 0 --name transcend-cpu)
echo "== transcend: ${CMD[*]}" > /tmp/tl/A25/commands.txt
/usr/bin/time -q -f "transcend	%e" -a -o /tmp/tl/A25/stages.tsv "${CMD[@]}" > /tmp/tl/A25/transcend.log 2>&1
echo "rc $? $(date -u +%FT%TZ)" >> /tmp/tl/A25/launch.txt

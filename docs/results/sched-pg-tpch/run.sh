#!/bin/bash
# TPC-H scale 0.1 on PostgreSQL (issue 13 item 5): load, then pg bench over 8 held-out streams.
cd /work/main
now=$(date -u +%H%M); if [ "$now" -ge 2150 ]; then echo "too late ($now): skipped"; exit 0; fi
export LAB_RUNS=/tmp/tpchrun/runs LAB_PG_CACHE=/tmp/tpchrun/cache HF_HUB_OFFLINE=1
L=".venv/bin/python -m lab_shared.cli sched pg"
D=/tmp/tpchrun/pg
date -u
$L up --dir $D --shared-buffers 16MB
/usr/bin/time -f "load %e s" $L load --dir $D --dataset tpch --scale 0.1
git rev-parse HEAD
/usr/bin/time -f "bench %e s" timeout 1000 $L bench --dir $D --episodes 8 --queries 22 \
  --policies fifo,greedy,lookahead:1 --set exact_batches=0 --set queue_size=8 \
  --set train_instances=132 --set train_steps=16000 --set train_envs=4
echo "bench exit $?"
$L down --dir $D --keep
date -u

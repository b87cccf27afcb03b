#!/bin/bash
# TPC-H scale 0.1 on PostgreSQL (issue 13 items 4-5): one pg bench per (access, clients); called once per config.
# usage: run.sh ACCESS CLIENTS [AGENT_RUN_DIR]
cd /work/main
export LAB_RUNS=/tmp/tpch13/runs LAB_PG_CACHE=/tmp/tpch13/cache HF_HUB_OFFLINE=1
L=".venv/bin/python -m lab_shared.cli sched pg"
D=/tmp/tpch13/pg
SB=${SB:-16MB}
ACCESS=$1; CLIENTS=$2; AGENT=$3
date -u; git rev-parse HEAD
if [ -n "$AGENT" ]; then LEARN="--set agents=agent:$AGENT"; else LEARN="--set train_instances=132 --set train_steps=16000 --set train_envs=4"; fi
/usr/bin/time -f "bench %e s" timeout 1150 $L bench --dir $D --episodes 8 --queries 22 --policies fifo \
  --access $ACCESS --clients $CLIENTS --set shared_buffers=$SB \
  --set heuristics=fifo,shortest,greedy,lookahead:1 --set planner=planner --set val_episodes=2 \
  --set exact_batches=0 --set queue_size=8 --set learned_la=false $LEARN
echo "bench exit $?"
date -u

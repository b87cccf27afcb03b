#!/bin/bash
# one pg bench of issue 13 (TPC-H 0.1, 8 held-out streams of the 22 queries, queue 8), resumable:
# usage: run.sh ACCESS CLIENTS [AGENT_RUN_DIR | none] [SHARED_BUFFERS]
#   AGENT empty: train PPO in simulation (16k steps, 132 training instances); none: no learned policy.
# A second call with the same key resumes the run folder (only the missing episodes are measured).
ACCESS=$1; CLIENTS=$2; AGENT=$3; SB=${4:-16MB}
RUN_KEY=$ACCESS-$CLIENTS-$SB; . "$(dirname "$0")/env.sh"
now=$(date -u +%H%M); if [ "$now" -ge 0330 ] && [ "$now" -lt 2300 ]; then echo "too late ($now): not started"; exit 0; fi
date -u; git rev-parse HEAD
prev=$(ls -d $LAB_RUNS/sched-bench/postgres-* 2>/dev/null | head -1)
if [ -n "$prev" ] && [ -f "$prev/results.json" ]; then echo "done already: $prev"; exit 0; fi
if [ -n "$prev" ]; then
  echo "resuming $prev"
  /usr/bin/time -f "bench %e s" timeout ${LIMIT:-870} $L bench --resume "$prev"
else
  if [ "$AGENT" = none ]; then LEARN="--set learned=false"
  elif [ -n "$AGENT" ]; then LEARN="--set agents=agent:$AGENT"
  else LEARN="--set train_instances=132 --set train_steps=16000 --set train_envs=4"; fi
  /usr/bin/time -f "bench %e s" timeout ${LIMIT:-870} $L bench --dir $D --episodes 8 --queries 22 --policies fifo \
    --access $ACCESS --clients $CLIENTS --set shared_buffers=$SB \
    --set heuristics=fifo,shortest,greedy,lookahead:1 --set planner=planner --set val_episodes=2 \
    --set exact_batches=0 --set queue_size=8 --set learned_la=false $LEARN
fi
echo "bench exit $?"
date -u
# 4 clients: in the same (2-core) job, a 1-client reference of fifo, greedy, planner on the same streams, so
# that 1- and 4-client wall times are measured under the same conditions
if [ "$CLIENTS" != 1 ] && [ -z "$NO_REF" ]; then
  RUN_KEY=$ACCESS-1-$SB-ref; . "$(dirname "$0")/env.sh"
  prev=$(ls -d $LAB_RUNS/sched-bench/postgres-* 2>/dev/null | head -1)
  if [ -n "$prev" ] && [ -f "$prev/results.json" ]; then echo "reference done already: $prev"
  elif [ -n "$prev" ]; then /usr/bin/time -f "reference %e s" timeout 300 $L bench --resume "$prev"
  else
    /usr/bin/time -f "reference %e s" timeout 300 $L bench --dir $D --episodes 8 --queries 22 \
      --policies fifo,greedy,planner --access $ACCESS --clients 1 --set shared_buffers=$SB \
      --set exact_batches=0 --set queue_size=8 --set learned=false
  fi
  echo "reference exit $?"; date -u
fi

#!/bin/bash
# pool-size check: fifo vs greedy on one held-out stream at 64MB (the documented 16MB run had them 0.21% apart)
cd /work/main
export LAB_RUNS=/tmp/tpch13/sizeruns LAB_PG_CACHE=/tmp/tpch13/cache HF_HUB_OFFLINE=1
L=".venv/bin/python -m lab_shared.cli sched pg"
date -u
/usr/bin/time -f "size 64MB %e s" timeout 300 $L bench --dir /tmp/tpch13/pg --episodes 1 --queries 22 --policies fifo,greedy \
    --set learned=false --set exact_batches=0 --set shared_buffers=64MB 2>&1 | grep -v "tracing\|episode 0"

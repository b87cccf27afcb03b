#!/bin/bash
cd /work/main
export LAB_RUNS=/tmp/tpch13/runs LAB_PG_CACHE=/tmp/tpch13/cache HF_HUB_OFFLINE=1
L=".venv/bin/python -m lab_shared.cli sched pg"
D=/tmp/tpch13/pg
date -u
$L up --dir $D --shared-buffers 16MB
/usr/bin/time -f "load %e s" $L load --dir $D --dataset tpch --scale 0.1
date -u

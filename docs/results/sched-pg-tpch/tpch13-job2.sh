#!/bin/bash
# job 2: runs C (exact, 4 clients) and D (estimated, 4 clients) with the agents trained in A and B
cd /work/main
SB=$(cat /tmp/tpch13/SB)
agent() { .venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['agents'][0].split(':',1)[1])" "$1/pg_state.json"; }
A=$(grep -l '"access": "exact"' /tmp/tpch13/runs/sched-bench/*/pg_config.json | head -1 | xargs dirname)
B=$(grep -l '"access": "estimated"' /tmp/tpch13/runs/sched-bench/*/pg_config.json | head -1 | xargs dirname)
echo "A=$A B=$B"
now=$(date -u +%H%M); if [ "$now" -ge 0030 ] && [ "$now" -lt 2300 ]; then echo "too late ($now): skipped"; exit 0; fi
SB=$SB /tmp/tpch13/run.sh exact 4 "$(agent $A)"
now=$(date -u +%H%M); if [ "$now" -ge 0030 ] && [ "$now" -lt 2300 ]; then echo "too late ($now): skipped"; exit 0; fi
SB=$SB /tmp/tpch13/run.sh estimated 4 "$(agent $B)"

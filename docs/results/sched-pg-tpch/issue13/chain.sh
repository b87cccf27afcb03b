#!/bin/bash
# the issue-13 sequence on one cluster (runs after exact-1 has trained the exact-set agent):
# estimated-1 (trains the estimated-set agent; 1 core), then exact-4 and estimated-4 with those agents (both
# cores: wall time is reported). Each piece is one wrapper call <= ~15 min (4 clients: <= ~10 min); an
# unfinished run is resumed by the next piece. Nothing new starts after 03:30 UTC.
P=$(dirname "$(readlink -f "$0")"); W=${W:-/tmp/tpch13b}
late() { [ "$(date -u +%H%M)" -ge 0330 ] && [ "$(date -u +%H%M)" -lt 2300 ]; }
done_() { ls $W/runs-$1/sched-bench/postgres-*/results.json >/dev/null 2>&1; }
agent() { .venv/bin/python -c "import json,sys,glob; print(json.load(open(glob.glob(sys.argv[1])[0]))['agents'][0].split(':',1)[1])" "$W/runs-$1/sched-bench/postgres-*/pg_state.json"; }
cd /work/main
for i in 1 2; do done_ estimated-1-16MB || { late && exit 0; /tmp/lab-heavy1 $P/run.sh estimated 1; }; done
done_ exact-1-16MB || { echo "exact-1 missing"; exit 1; }
for i in 1 2 3; do done_ exact-4-16MB || { late && exit 0; LIMIT=570 /tmp/lab-heavy2 $P/run.sh exact 4 "$(agent exact-1-16MB)"; }; done
done_ estimated-1-16MB || { echo "estimated-1 missing"; exit 1; }
for i in 1 2 3; do done_ estimated-4-16MB || { late && exit 0; LIMIT=570 /tmp/lab-heavy2 $P/run.sh estimated 4 "$(agent estimated-1-16MB)"; }; done
echo "chain done $(date -u)"

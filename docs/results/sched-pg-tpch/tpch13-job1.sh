#!/bin/bash
# job 1: load TPC-H 0.1; pool-size check; runs A (exact, 1 client) and B (estimated, 1 client)
cd /work/main
now=$(date -u +%H%M); if [ "$now" -ge 0028 ] && [ "$now" -lt 2300 ]; then echo "too late ($now): skipped"; touch /tmp/tpch13/job1.done /tmp/tpch13/job2.done; exit 0; fi
/tmp/tpch13/load.sh
/tmp/tpch13/size.sh
SB=$(.venv/bin/python - <<'PY'
import json, pathlib, sys
sb = "16MB"
for d in sorted(pathlib.Path("/tmp/tpch13/sizeruns/sched-bench").iterdir()):
    r = {x["policy"]: x["reads"] for x in json.loads((d / "results.json").read_text())["pg_main"]}
    g = (r["fifo"] - r["greedy"]) / r["fifo"]
    print(f"64MB: fifo {r['fifo']:.0f} greedy {r['greedy']:.0f} gap {g:.2%} (16MB documented: 0.21%)", file=sys.stderr)
    if abs(g) > 0.01:
        sb = "64MB"
print(sb)
PY
)
echo "pool chosen: $SB"; echo "$SB" > /tmp/tpch13/SB
SB=$SB /tmp/tpch13/run.sh exact 1
now=$(date -u +%H%M); if [ "$now" -ge 0030 ] && [ "$now" -lt 2300 ]; then echo "too late ($now): skipped"; touch /tmp/tpch13/job1.done; exit 0; fi
SB=$SB /tmp/tpch13/run.sh estimated 1
touch /tmp/tpch13/job1.done

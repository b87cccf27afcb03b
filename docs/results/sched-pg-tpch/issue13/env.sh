# shared settings of the issue-13 TPC-H runs (sourced by the other scripts)
cd /work/main
W=${W:-/tmp/tpch13b}            # scratch: run folders, trace cache, logs
D=${D:-/var/lib/lab/tpch13}     # our private cluster (root: /root is closed to the postgres user)
export LAB_RUNS=$W/runs-${RUN_KEY:-misc} LAB_PG_CACHE=$W/cache-$(basename $D) HF_HUB_OFFLINE=1
L=".venv/bin/python -m lab_shared.cli sched pg"

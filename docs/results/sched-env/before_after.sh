#!/usr/bin/env bash
# before (the code at 9a590b4, this benchmark script) and after (HEAD), back to back under the heavy lock:
#   /tmp/lab-heavy2 docs/results/sched-env/before_after.sh
# with the two trees unpacked first (the benchmark script of a4f730c runs both):
#   git archive 9a590b4 packages/learnsched/src | tar -x -C /tmp/h2/old
#   git archive a4f730c packages/learnsched/src benchmarks/sched_env.py | tar -x -C /tmp/h2/new; echo a4f730c > /tmp/h2/new/REV
cd /work/main
out=/tmp/h2/final
mkdir -p $out
{ echo "start $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"; echo "before: 9a590b4 (git archive), after: $(cat /tmp/h2/new/REV)";
  .venv/bin/python -c "import numba, numpy, sys; print('python', sys.version.split()[0], 'numba', numba.__version__, 'numpy', numpy.__version__)"; } > $out/prov.txt
PYTHONPATH=/tmp/h2/old/packages/learnsched/src .venv/bin/python /tmp/h2/new/benchmarks/sched_env.py --seconds 20 --rounds 5 > $out/before.txt 2>&1
echo "before done $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)" >> $out/prov.txt
PYTHONPATH=/tmp/h2/new/packages/learnsched/src .venv/bin/python /tmp/h2/new/benchmarks/sched_env.py --seconds 20 --rounds 5 > $out/after.txt 2>&1
echo "after done $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)" >> $out/prov.txt

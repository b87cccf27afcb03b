# one locked heavy job: train the shape-free agent, then evaluate it (held-out families, then seen families on held-out seeds)
cd /work/main
now=$(date +%s); end=$(date -d "21:40" +%s)
lim=$(( end - now )); [ $lim -gt 660 ] && lim=660; [ $lim -lt 240 ] && lim=240
echo "[job] start $(date -u +%T) train limit ${lim}s"
.venv/bin/lab sched train --agent setnet --name setnet-families --steps 5000000 --seed 0 --quiet \
  --set max_seconds=$lim --set eval_every=100000 --set ckpt_every=100000 --set val_instances=3 --set val_episodes=2 \
  --set instances=200 --set families=hotset,lookup,mixed,poisson,bursty,skew
RUN=$(ls -dt runs/sched-train/setnet-families-* | head -1)
echo "[job] trained $RUN $(date -u +%T)"
.venv/bin/lab sched bench-families --families scans,joins,shift --instances 25 --seeds 2 --set val_seeds=2 --agent $RUN/best
echo "[job] held-out families done $(date -u +%T)"
.venv/bin/lab sched bench-families --families hotset,lookup,mixed,poisson,bursty,skew --instances 6 --seeds 2 --set val_seeds=2 --agent $RUN/best
echo "[job] seen families done $(date -u +%T)"

#!/usr/bin/env bash
# The one evaluation of the agent chosen on validation (AGENT = its best/ checkpoint), each piece one heavy
# job on one core; the previous PPO agent (docs/results/sched-families/ppo) runs beside it as a reference:
#   bash docs/results/sched-families-distill/eval.sh AGENT heldout|seen|builtins
cd "$(dirname "$0")/../../.."
AGENT=$1; what=$2
HEAVY=${HEAVY:-/tmp/lab-heavy1}
OLD=docs/results/sched-families/ppo/agent/step-00100352
echo "[eval $what] start $(date -u +%T) $AGENT"
case $what in
heldout) $HEAVY .venv/bin/lab sched bench-families --families scans,joins,shift --instances 25 --seeds 2 \
           --set val_seeds=2 --agent "$AGENT" --agent $OLD ;;
seen) $HEAVY .venv/bin/lab sched bench-families --families hotset,lookup,mixed,poisson,bursty,skew --instances 6 \
        --seeds 2 --set val_seeds=2 --agent "$AGENT" --agent $OLD ;;
builtins) $HEAVY .venv/bin/lab sched bench -w default,drift --seeds 20 \
            --policies fifo,shortest,greedy,lookahead:1,lookahead:2 --agent "$AGENT" --buffer-sweep "" \
            --queue-sweep "" --set exact_batches=0 ;;
esac
echo "[eval $what] done rc=$? $(date -u +%T)"

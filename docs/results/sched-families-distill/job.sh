#!/usr/bin/env bash
# The exact commands behind docs/sched.md "Planner imitation: behaviour cloning + DAgger", in order, from the
# repository root. Each heavy piece ran through the team's one-core wrapper ($HEAVY: /tmp/lab-heavy1, or a
# queueing variant of it on the same core locks; leave HEAVY empty to run directly). 2026-12-02, one shared
# CPU core per piece.
set -e
HEAVY=${HEAVY:-}

# 1. which planner to label with (36 validation episodes of the six training families) -> label_planners.json
$HEAVY .venv/bin/python docs/results/sched-families-distill/label_planners.py \
  docs/results/sched-families-distill/label_planners.json planner:4:3:256,planner:4:2:128,planner:2:2:64,planner:1:1:64

# 2. behaviour cloning + 3 DAgger rounds, imitation only (--steps 0), in <= 14 min pieces (train.sh resumes
#    after each SIGTERM). The run was resumed once with --force because the config gained the field
#    distill_soft (= 0.0, its default) between the pieces; nothing else changed (provenance.json).
bash docs/results/sched-families-distill/train.sh dagger --set distill_episodes=600 --set dagger_rounds=3 \
  --set dagger_episodes=300 --set distill_epochs=10 --set distill_planner=planner:2:2:64 --set lr=0.0002
RUN=$(ls -dt runs/sched-train/dagger-* | head -1)
# the checkpoint kept on validation (round 3) -> docs/results/sched-families-distill/agent/ (copied before 2b)
cp -r "$RUN"/best/step-00000003 docs/results/sched-families-distill/agent/

# 2b. PPO fine-tuning from the round-3 net, validation only (worse at every check: best/ stays round 3)
$HEAVY timeout -s TERM 600 .venv/bin/lab sched train --agent setnet --resume "$RUN" --steps 200000 \
  --set max_seconds=360 --quiet --force
# 2c. the cost-sensitive variant, 1 DAgger round, validation only (docs/results/sched-families-distill/soft/)
bash docs/results/sched-families-distill/train.sh soft --set distill_episodes=600 --set dagger_rounds=1 \
  --set dagger_episodes=300 --set distill_epochs=10 --set distill_planner=planner:2:2:64 --set lr=0.0002 \
  --set distill_soft=0.01

# 3. the one evaluation (held-out families, seen families on unseen instances, built-ins), with the previous
#    PPO agent beside it (eval.sh has the exact bench commands)
bash docs/results/sched-families-distill/eval.sh docs/results/sched-families-distill/agent heldout
bash docs/results/sched-families-distill/eval.sh docs/results/sched-families-distill/agent seen
bash docs/results/sched-families-distill/eval.sh docs/results/sched-families-distill/agent builtins
python docs/results/sched-families-distill/table.py docs/results/sched-families-distill/heldout/results.json

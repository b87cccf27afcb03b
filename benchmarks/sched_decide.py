"""Decision latency of a trained scheduler: observation + network forward + argmax, per decision, on CPU.

By default: the shape-free attention agent (agents/setnet.py) with a queue window of 32 (the default
workload with all 32 queries of an episode in the window), the issue's target; weights from `--checkpoint`
(a setnet run or checkpoint) or freshly initialised (latency does not depend on training). `--slotnet`
measures the fixed-shape PPO agent at queue 8 instead (training a small one unless `--checkpoint`). Single torch thread. The figure is the wall-clock median (robust to the preemptions of a shared machine,
which show up in p99); the thread's CPU time per decision is printed too.
Reports median and p99 latency next to greedy-most-cached's, and what one decision costs in disk reads
(latency / time of one page read at 0.1 ms, an SSD random read).

    .venv/bin/python benchmarks/sched_decide.py [--checkpoint RUN] [--full]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from lab_learnsched.agents.config import TrainConfig
from lab_learnsched.agents.policy import AgentScheduler, load_agent
from lab_learnsched.agents.ppo import train_ppo
from lab_learnsched.agents.setnet import SetAgentScheduler, SetNet, setnet_meta
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.schedulers import make_scheduler
from lab_shared.rundir import RunDir


def latencies(sched, env, n_episodes, clock=time.perf_counter):
    out = []
    for s in range(n_episodes):
        env.reset(seed=s)
        sched.reset(s)
        done = False
        while not done:
            st = env.state()
            t = clock()
            a = sched.choose(st)
            out.append(clock() - t)
            _, _, done, _, _ = env.step(a)
    return np.array(out) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--slotnet", action="store_true", help="the fixed-shape PPO agent at queue 8 instead")
    ap.add_argument("--queue", type=int, default=32)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ckpt = args.checkpoint
    if args.slotnet:
        if ckpt is None:
            tmp = tempfile.mkdtemp()
            cfg = TrainConfig(steps=2048, eval_every=0, ckpt_every=0, eval_episodes=2)
            run = RunDir.create("sched-train", "bench", cfg, root=tmp)
            ckpt = train_ppo(cfg, run, show_progress=False)["checkpoint"]
        agent, env, what = AgentScheduler.load(ckpt), BufferPoolEnv("default"), "slot-net PPO agent, queue 8"
    else:
        if ckpt is None:
            torch.manual_seed(0)
            net = SetNet()
            agent = SetAgentScheduler(net, setnet_meta(net))
        else:
            agent = load_agent(ckpt)
        env = BufferPoolEnv("default", queue_size=args.queue)
        what = f"attention agent, queue {args.queue}"
    n = 60 if args.full else 20
    latencies(agent, env, 2)  # warm-up
    lat = latencies(agent, env, n)
    cpu = latencies(agent, env, n, clock=time.thread_time)
    g = latencies(make_scheduler("greedy"), env, n)
    med, p99 = np.median(lat), np.percentile(lat, 99)
    print(f"{what}: median {med:.3f} ms  p99 {p99:.3f} ms  mean {lat.mean():.3f} ms  ({len(lat)} decisions)")
    print(f"agent   CPU time median {np.median(cpu):.3f} ms  p99 {np.percentile(cpu, 99):.3f} ms")
    print(f"greedy  median {np.median(g):.3f} ms  p99 {np.percentile(g, 99):.3f} ms")
    print(f"one decision costs about {med / 0.1:.1f} page reads at 0.1 ms per read")
    print(
        f"RESULT sched_decide: {med:.3f} ms per decision median ({what}), p99 {p99:.3f} ms (target: <= 1 ms)"
    )


if __name__ == "__main__":
    main()

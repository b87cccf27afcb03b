"""The Ray backend's overhead and scaling: the same small jobs on the local backend and on a local Ray cluster.

Jobs (each run through the packages' own entry points, exactly as `--backend local|ray` runs them):
- sweep: an SFA sweep of 4 grid points x 2 seeds on the default image sequence, cut down (8 runs),
- synth: a synthetic corpus of Stockfish-expert games at depth 2 (a Stockfish per worker),
- sched: the scheduler bench's episodes (every policy on held-out episodes, plus the buffer/queue sweeps),
- train: `lab sched train --agent ppo` at 8 envs in `rollout_shards = 2` shards (agents/shards.py): stepped
  here shard after shard, or by Ray actors (one call a rollout); the default lockstep loop is timed beside it,
- arena: `lab chess eval`'s games of a tiny GPT (masked policy) and two synthetic experts against Stockfish at
  depth 1 (deterministic), as `--backend ray` plays them: chunks of games, a Stockfish per worker, the model
  loaded per worker (`--serve worker`); at 2 CPUs also served by one batching actor (`--serve actor`).
Configurations: local (the default: one process; synth also with its 2-process pool, arena with a 2-engine
pool), Ray with 1 CPU and Ray
with 2 CPUs (a fresh local cluster each, started as `--backend ray` starts one, workers at niceness 0, and
warmed up before the clock starts: every worker has imported the packages and decoded the sweep's image
datasets, as the local process has after its untimed first sweep; start, warm-up and each worker's dataset
decoding are printed apart, and so is Ray's cost per task, from 64 empty tasks). Ray overhead = Ray(W) /
local(W) - 1 at the same number of workers W; speedup = Ray(1 CPU) / Ray(2 CPUs). Every configuration must give the same results
(checked). Wall-clock time: Ray is several processes, so run this under the heavy lock on a quiet machine.

    .venv/bin/python benchmarks/scale_ray.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LAB_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sweep_job(backend, runs: Path, quick: bool):
    from lab_sfa.sweep import run_sweep
    from lab_shared.rundir import RunDir

    base = {
        "sequence.name": "default", "sequence.width": 8, "sequence.n_train": 400, "sequence.n_val": 100,
        "sequence.n_test": 200, "sequence.n_pretrain": 1000, "pretrain_steps": 40,
        "trainer.max_steps": 10 if quick else 40, "trainer.lr": 1e-3,
    }  # fmt: skip
    spec = {
        "seeds": [0, 1],
        "base": base,
        "grid": [{"method": "seq"}, {"method": "sfa", "method.beta": [0.1, 0.3]}, {"method": "l2"}],
    }
    run = RunDir.create("bench-sweep", "sweep", root=runs)
    out = run_sweep(spec, run, backend=backend)
    return sorted((r["point"], r["acc"]) for r in out["all"])


def synth_job(backend, runs: Path, quick: bool, workers: int = 1):
    from lab_shared.tools import find_stockfish
    from lab_transcendence.synth import SynthSettings, generate_corpus

    s = SynthSettings(players=3, games=12 if quick else 48, seed=0, depth=2, rating_games=0, max_plies=160)
    out = Path(tempfile.mkdtemp(dir=runs))
    generate_corpus(out, s, find_stockfish(), workers=workers, show_progress=False, backend=backend)
    return (out / "games.pgn").read_text()


def sched_job(backend, runs: Path, quick: bool):
    from lab_learnsched.bench import BenchConfig, run_sim_bench
    from lab_shared.rundir import RunDir

    cfg = BenchConfig(
        workloads=["default"],
        policies=["fifo", "random", "shortest", "greedy", "lookahead:1", "lookahead:2"],
        seeds=4 if quick else 12,
        buffer_sweep=[400, 800],
        queue_sweep=[4, 8],
        sweep_seeds=2 if quick else 6,
        sweep_policies=["fifo", "greedy", "lookahead:1", "lookahead:2"],
        exact_batches=0,
    )
    out = run_sim_bench(cfg, RunDir.create("bench-sched", "sched", root=runs), backend)
    return [[{k: v for k, v in r.items() if k != "ms_per_decision"} for r in rows] for rows in out.values()]


def arena_model(runs: Path) -> Path:
    """A tiny random GPT exported with two synthetic experts in its metadata (what eval rates beside it)."""
    import torch

    from lab_transcendence.export import export_model
    from lab_transcendence.model import GPT, preset_config
    from lab_transcendence.synth import Expert
    from lab_transcendence.tokenizer import get_tokenizer

    torch.manual_seed(0)
    model = GPT(preset_config("tiny", get_tokenizer("char").vocab_size)).eval()
    experts = [Expert("e0", random_rate=0.2, blind_spot="N", depth=1).to_dict(),
               Expert("e1", random_rate=0.3, blind_spot="B", depth=1).to_dict()]  # fmt: skip
    return export_model(model, runs / "arena-model", "char", {"experts": experts})


def arena_job(backend, runs: Path, quick: bool, engines: int = 1, serve: str = "worker"):
    from lab_shared.io import atomic_write_json
    from lab_shared.rundir import RunDir
    from lab_transcendence.transcend import EvalConfig, run_experiment

    anchors = runs / "anchors-20.json"
    atomic_write_json(anchors, {"20": 2000})  # full strength at depth 1: the same moves on every backend
    cfg = EvalConfig(models=[str(runs / "arena-model")], temperatures=[0.001], policies=["masked"], levels=[20],
                     games=8 if quick else 24, expert_games=4 if quick else 12, limit="depth:1", max_moves=40,
                     concurrency=16, engines=engines, anchors=str(anchors), device="cpu")  # fmt: skip
    run = RunDir.create("bench-arena", "arena", cfg, root=runs)
    res = run_experiment(cfg, run, show_progress=False, backend=backend, serve=serve)
    games = sorted(
        ({k: v for k, v in r.items() if k != "date"} for r in read_records(run.file("games.jsonl"))),
        key=lambda r: r["game_id"],
    )
    return games, res["table"]


def train_job(backend, runs: Path, quick: bool, shards: int = 2, rollouts: int = 0):
    """`lab sched train --agent ppo`: 8 envs in `shards` rollout shards (0: the lockstep loop), here or on
    Ray actors (as many as the cluster's CPUs, at most one a shard); `rollouts` of 8 x 64 steps (0: 2 quick,
    else 16)."""
    from safetensors.torch import load_file

    from lab_learnsched.agents.config import TrainConfig
    from lab_learnsched.agents.ppo import train_ppo
    from lab_shared.checkpoint import find_checkpoint
    from lab_shared.rundir import RunDir

    rollouts = rollouts or (2 if quick else 16)
    cfg = TrainConfig(workload="small", num_envs=8, steps=8 * 64 * rollouts, eval_every=0,
                      ckpt_every=0, eval_episodes=2, hidden=64, seed=0, rollout_shards=shards)  # fmt: skip
    run = RunDir.create("bench-train", "ppo", cfg, root=runs)
    train_ppo(cfg, run, show_progress=False, backend=backend)
    w = load_file(str(find_checkpoint(run.path) / "model.safetensors"))
    return {k: v.tolist() for k, v in sorted(w.items())}


def read_records(path):
    from lab_transcendence.arena import read_records as read

    return read(path)


def _warm(_):
    """A warm-up task, once per worker process: the imports every job's tasks need, and the sweep's image
    datasets decoded (what the local process holds after its untimed first sweep). (pid, decoding seconds)."""
    import lab_learnsched.agents.shards  # noqa: F401
    import lab_learnsched.bench  # noqa: F401
    import lab_sfa.sweep  # noqa: F401
    import lab_transcendence.arena_tasks  # noqa: F401
    import lab_transcendence.player  # noqa: F401
    import lab_transcendence.synth  # noqa: F401
    from lab_sfa.images.data import load_digits28, load_fmnist, load_mnist5k

    t = time.perf_counter()
    load_fmnist(), load_mnist5k(), load_digits28()
    data_s = time.perf_counter() - t
    time.sleep(1.0)  # holds this worker so the next warm-up task starts another
    return os.getpid(), round(data_s, 2)


def _noop(x):
    return x


def timed(fn, *args, **kw):
    t = time.perf_counter()
    res = fn(*args, **kw)
    return time.perf_counter() - t, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller jobs (a smoke run, not for the figures)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/scale_ray"))
    args = ap.parse_args()
    import ray

    from lab_shared.backend import Backend, _ray_connect, map_tasks

    os.environ.pop("RAY_ADDRESS", None)

    work = Path(tempfile.mkdtemp(prefix="scale-ray-"))
    os.environ["LAB_RUNS"] = str(work)  # Ray workers inherit it at ray.init: one pretraining cache for all
    runs = work / "jobs"
    runs.mkdir()
    jobs = {
        "sweep": sweep_job,
        "synth": synth_job,
        "sched": sched_job,
        "arena": arena_job,
        "train": train_job,
    }
    times: dict[str, dict[str, float]] = {j: {} for j in jobs}
    results: dict[str, dict[str, object]] = {j: {} for j in jobs}

    local = Backend("local")
    sweep_job(local, runs, args.quick)  # untimed: fills the pretraining cache every configuration reads
    arena_model(runs)
    for name, job in jobs.items():
        times[name]["local-1"], results[name]["local-1"] = timed(job, local, runs, args.quick)
        print(f"{name:6s} local, 1 process     {times[name]['local-1']:7.1f} s", flush=True)
    times["synth"]["local-2"], results["synth"]["local-2"] = timed(synth_job, local, runs, args.quick, 2)
    print(f"synth  local, 2-process pool {times['synth']['local-2']:7.1f} s", flush=True)
    times["arena"]["local-2"], results["arena"]["local-2"] = timed(arena_job, local, runs, args.quick, 2)
    print(f"arena  local, 2-engine pool  {times['arena']['local-2']:7.1f} s", flush=True)
    import lab_transcendence.arena as arena_mod

    arena_mod.CLEAR_HASH_EACH_MOVE = (
        False  # what a clear hash each move costs (the price of reproducible games)
    )
    hash_kept = timed(arena_job, local, runs, args.quick)[0]
    arena_mod.CLEAR_HASH_EACH_MOVE = True
    print(f"arena  local, 1 process, hash kept between moves (old) {hash_kept:7.1f} s", flush=True)
    lockstep = timed(train_job, local, runs, args.quick, 0)[0]  # the default loop: one batched forward a step
    half_n = 1 if args.quick else 8  # train at half the rollouts too: its extra time is the cost per rollout
    half = {"local-1": timed(train_job, local, runs, args.quick, 2, half_n)[0]}
    print(f"train  local, lockstep loop (the default, no shards) {lockstep:7.1f} s", flush=True)
    startup = {}
    for w in (1, 2):
        t0 = time.perf_counter()
        _ray_connect(None, w)  # as `--backend ray` starts a local Ray (its workers at niceness 0)
        t1 = time.perf_counter()
        warm = map_tasks(_warm, [(str(i), i) for i in range(w)], Backend("ray"))
        t2 = time.perf_counter()
        map_tasks(_noop, [(str(i), i) for i in range(64)], Backend("ray"))
        per_task = (time.perf_counter() - t2) / 64
        startup[w] = {
            "ray_init_s": round(t1 - t0, 2),
            "warm_up_s": round(t2 - t1, 2),
            "worker_dataset_decode_s": [d for _, d in warm],
            "workers": len({p for p, _ in warm}),
            "ms_per_empty_task": round(1000 * per_task, 2),
        }
        print(f"ray {w} CPU: init {t1 - t0:.1f} s, worker warm-up {t2 - t1:.1f} s (of it decoding the "
              f"sweep's datasets {[d for _, d in warm]} s a worker), {1000 * per_task:.1f} ms an empty task",
              flush=True)  # fmt: skip
        for name, job in jobs.items():
            key = f"ray-{w}"
            times[name][key], results[name][key] = timed(job, Backend("ray"), runs, args.quick)
            print(f"{name:6s} ray, {w} CPU            {times[name][key]:7.1f} s", flush=True)
        half[f"ray-{w}"] = timed(train_job, Backend("ray"), runs, args.quick, 2, half_n)[0]
        if w == 2:  # the model in one actor that batches every chunk's positions (the GPU design)
            key = "ray-2-actor"
            times["arena"][key], results["arena"][key] = timed(arena_job, Backend("ray"), runs, args.quick, 1,
                                                               "actor")  # fmt: skip
            print(f"arena  ray, 2 CPU, served    {times['arena'][key]:7.1f} s", flush=True)
            from lab_transcendence.arena_tasks import SERVED_BATCHES, chunk_size

            served = {"passes": len(SERVED_BATCHES), "mean_positions": sum(SERVED_BATCHES) / max(1, len(SERVED_BATCHES)),
                      "max_positions": max(SERVED_BATCHES, default=0),
                      "chunk_games": chunk_size(48 if not args.quick else 16, 2, 16)}  # fmt: skip
            print(f"arena  actor batches: {served}", flush=True)
        ray.shutdown()

    same = {name: all(r == res["local-1"] for r in res.values()) for name, res in results.items()}
    lines, summary = [], {}
    for name in jobs:
        t = times[name]
        over1 = t["ray-1"] / t["local-1"] - 1
        speed = t["ray-1"] / t["ray-2"]
        row = {"overhead_1": over1, "speedup_ray_1_to_2": speed, "same_results": same[name], **t}
        if "local-2" in t:
            row["overhead_2"] = t["ray-2"] / t["local-2"] - 1
        summary[name] = row
        extra = f", vs 2-process pool {100 * row['overhead_2']:+.0f}%" if "overhead_2" in row else ""
        lines.append(
            f"{name} overhead {100 * over1:+.0f}% (1 worker){extra}, speedup 1->2 Ray CPUs {speed:.2f}x, "
            f"same results {same[name]}"
        )
        print(f"{name:6s} {lines[-1].split(' ', 1)[1]}")
    worst = max(max(r["overhead_1"], r.get("overhead_2", -1)) for r in summary.values())
    args.out.mkdir(parents=True, exist_ok=True)
    summary["arena"]["local-1-hash-kept"] = hash_kept
    summary["arena"]["actor_batches"] = served
    summary["train"]["local-1-lockstep"] = lockstep
    full_n = 2 if args.quick else 16
    marginal = {k: (times["train"][k] - v) / (full_n - half_n) for k, v in half.items()}  # s a rollout
    summary["train"]["half_rollouts"] = {"rollouts": half_n, **half}
    summary["train"]["s_per_rollout"] = marginal
    summary["train"]["overhead_1_per_rollout"] = marginal["ray-1"] / marginal["local-1"] - 1
    summary["train"]["speedup_per_rollout_1_to_2"] = marginal["ray-1"] / marginal["ray-2"]
    doc = {
        "summary": summary,
        "ray_startup": startup,
        "quick": args.quick,
        "ray": ray.__version__,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_avg_at_end": os.getloadavg(),
    }
    (args.out / "scale_ray.json").write_text(json.dumps(doc, indent=2))
    print(
        f"RESULT scale_ray: worst Ray overhead {100 * worst:+.0f}% at equal workers (target <= +10%); "
        f"speedup 1->2 CPUs sweep {summary['sweep']['speedup_ray_1_to_2']:.2f}x, synth "
        f"{summary['synth']['speedup_ray_1_to_2']:.2f}x, sched {summary['sched']['speedup_ray_1_to_2']:.2f}x, "
        f"arena {summary['arena']['speedup_ray_1_to_2']:.2f}x, train {summary['train']['speedup_ray_1_to_2']:.2f}x; "
        f"same results {all(same.values())}"
    )
    a = summary["arena"]
    print(
        f"RESULT scale_ray arena: local 1 engine {a['local-1']:.1f} s, 2-engine pool {a['local-2']:.1f} s; "
        f"Ray 1 CPU {a['ray-1']:.1f} s ({100 * a['overhead_1']:+.0f}%), 2 CPUs {a['ray-2']:.1f} s "
        f"({100 * a['overhead_2']:+.0f}% vs the 2-engine pool), model served by an actor at 2 CPUs "
        f"{a['ray-2-actor']:.1f} s ({a['ray-2-actor'] / a['ray-2']:.2f}x the per-worker model); local with the "
        f"engine hash kept between moves (not reproducible) {hash_kept:.1f} s"
    )
    t, w1 = summary["train"], startup[1]
    print(
        f"RESULT scale_ray train (rollout_shards=2): local {t['local-1']:.1f} s (lockstep default "
        f"{lockstep:.1f} s), Ray 1 CPU {t['ray-1']:.1f} s ({100 * t['overhead_1']:+.0f}%), 2 CPUs {t['ray-2']:.1f} s "
        f"({t['speedup_ray_1_to_2']:.2f}x); per rollout (from {half_n} vs {full_n} rollouts) local "
        f"{marginal['local-1']:.3f} s, Ray 1 CPU {marginal['ray-1']:.3f} s "
        f"({100 * t['overhead_1_per_rollout']:+.0f}%), 2 CPUs {marginal['ray-2']:.3f} s "
        f"({t['speedup_per_rollout_1_to_2']:.2f}x); Ray start: init {w1['ray_init_s']} s, worker warm-up "
        f"{w1['warm_up_s']} s (sweep datasets {w1['worker_dataset_decode_s']} s), "
        f"{w1['ms_per_empty_task']} ms an empty task"
    )


if __name__ == "__main__":
    main()

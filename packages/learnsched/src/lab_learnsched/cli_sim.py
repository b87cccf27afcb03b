"""`lab sched train | bench | simulate | workload`: the simulator side of the scheduler.

Heavy imports (numpy, torch, gymnasium) happen inside the commands so `lab --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab_learnsched.agents.config import SetTrainConfig, TrainConfig
from lab_shared.backend import AddressOpt, BackendOpt
from lab_shared.cli_utils import (
    ConfigOpt,
    ForceOpt,
    JsonOpt,
    SetOpt,
    choice_option,
    config_defaults,
    echo_json,
    shown_defaults,
    with_default,
)
from lab_shared.errors import LabError

# the registries these options choose from live in modules that import numpy (kept out of `lab --help`);
# tests/test_cli_choices.py checks that the lists here are theirs
AGENTS = ("ppo", "dqn", "setnet")  # TrainConfig (ppo, dqn) and SetTrainConfig (setnet)
BENCH_BACKENDS = ("sim", "postgres", "ray")
REPLACEMENTS = ("lru", "clock")  # bufferpool.ONLINE_POLICIES
FAMILIES = (
    "hotset",
    "lookup",
    "scans",
    "joins",
    "mixed",
    "poisson",
    "bursty",
    "skew",
    "shift",
)  # families.FAMILIES

WorkloadOpt = Annotated[
    str | None,
    typer.Option("--workload", "-w", help="Built-in (default, drift, small), workload .toml/.json or trace."),
]


def _csv(v: str | None, cast=str) -> list | None:
    if v is None:
        return None
    try:
        return [cast(x.strip()) for x in v.split(",") if x.strip()]
    except ValueError:
        raise LabError(f"bad list '{v}'") from None


def _find_run(resume: Path):
    from lab_shared.rundir import RunDir

    if not resume.exists():
        raise LabError(f"nothing to resume at {resume}")
    for cand in (
        resume,
        resume.parent,
        resume.parent.parent,
    ):  # a run dir, its checkpoints/ or one checkpoint
        if (cand / "config.json").is_file():
            return RunDir.open(cand)
    raise LabError(f"{resume} is not inside a `lab sched train` run directory")


def _run_agent(resume: Path | None) -> str | None:
    """The agent kind recorded in the config of the run being resumed (None if no run)."""
    if resume is None:
        return None
    from lab_shared.io import read_json

    cfg = read_json(_find_run(resume).path / "config.json")
    return cfg.get("agent") if isinstance(cfg, dict) else None


def _train_setnet(steps, seed, name, resume, config, set_, quiet, force=False, tasks=None, workers=0) -> None:
    """`train --agent setnet`: PPO over generated workload families (agents/setppo.py)."""
    from lab_learnsched.agents.config import SetTrainConfig
    from lab_learnsched.agents.setppo import train_setnet
    from lab_learnsched.families import get_family
    from lab_shared.cli_utils import config_from_cli
    from lab_shared.config import validate_range
    from lab_shared.rundir import RunDir

    run = _find_run(resume) if resume is not None else None
    if run is not None:
        config = config or run.path / "config.json"
    cfg = config_from_cli(SetTrainConfig, config, set_, steps=steps, seed=seed)
    validate_range("steps", cfg.steps, lo=0 if cfg.distill_episodes > 0 else 1)  # 0: imitation only
    validate_range("num_envs", cfg.num_envs, lo=1)
    validate_range("instances", cfg.instances, lo=1)
    _check_numbers(cfg, _TRAIN_ZERO_OK | ({"steps"} if cfg.distill_episodes > 0 else set()))
    for f in cfg.families:
        get_family(f)
    if cfg.distill_episodes > 0:  # bad imitation settings: one line before the run folder exists
        from lab_learnsched.agents.distill import check_distill

        check_distill(cfg)
    from lab_learnsched.agents.shards import check_shards

    check_shards(cfg, "setnet")
    if tasks is not None:
        tasks.start()  # Ray missing or unreachable: one line before the run folder exists
    if run is None:
        run = RunDir.create("sched-train", name or "setnet", cfg)
    else:  # --steps may extend the run; any other change needs --force (recorded in provenance.json)
        run.check_resume(cfg, force=force, allow=("steps",))
    extra = {"backend": tasks, "workers": workers} if tasks is not None and tasks.is_ray else {}
    res = train_setnet(cfg, run, resume=resume, show_progress=not quiet, **extra)
    run.write_results(res)
    typer.echo(
        f"setnet: {res['steps']} steps; validation reads vs best heuristic {100 * res['val_vs_best']:+.2f}% "
        f"(best checkpoint {res['best_checkpoint']}); run: {run.path}"
    )


def _check_numbers(cfg, zero_ok: set[str], prefix: str = "") -> None:
    """Every number of a config (nested ones too): finite floats; counts and sizes >= 1, or >= 0 for the
    fields in `zero_ok` (where 0 means "the default"); queue windows within the simulator's limit."""
    import dataclasses
    import math

    from lab_learnsched.workload import MAX_QUEUE

    for f in dataclasses.fields(cfg):
        v, key = getattr(cfg, f.name), prefix + f.name
        if dataclasses.is_dataclass(v):
            _check_numbers(v, zero_ok, key + ".")
            continue
        lo, hi = (0 if f.name in zero_ok else 1), (MAX_QUEUE if "queue" in f.name else math.inf)
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, float) and not math.isfinite(x):
                raise LabError(f"{key} must be a finite number, got {x}")
            if isinstance(x, int) and not isinstance(x, bool) and not lo <= x <= hi:
                raise LabError(f"{key} must be an integer in [{lo}, {hi}], got {x}")
    if getattr(cfg, "lr", 1.0) <= 0:
        raise LabError(f"{prefix}lr must be > 0, got {cfg.lr}")


_TRAIN_ZERO_OK = {"buffer_pages", "queue_size", "seed", "threads", "eval_every", "ckpt_every", "learning_starts", "distill_episodes", "dagger_rounds", "rollout_shards"}  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this module's commands to the package's Typer app."""

    @app.command(
        cls=config_defaults(
            TrainConfig,
            {
                "agent": "agent",
                "workload": "workload",
                "buffer_pages": "buffer_pages",
                "queue_size": "queue_size",
                "seed": "seed",
            },
        )
    )
    def train(
        agent: Annotated[
            str | None,
            choice_option(
                choices=AGENTS, help="Masked PPO, double DQN, or the shape-free agent on families."
            ),
        ] = None,
        workload: WorkloadOpt = None,
        steps: Annotated[
            int | None,
            typer.Option(
                help=with_default(
                    "Environment steps (scheduling decisions).",
                    f"{TrainConfig.steps}; setnet {SetTrainConfig.steps}",
                )
            ),
        ] = None,
        buffer_pages: Annotated[int | None, typer.Option(help="Pool size in pages (0 = workload's).")] = None,
        queue_size: Annotated[int | None, typer.Option(help="Queue window (0 = workload's).")] = None,
        seed: Annotated[int | None, typer.Option()] = None,
        name: Annotated[str, typer.Option(help="Run name prefix.")] = "",
        resume: Annotated[
            Path | None,
            typer.Option(help="Resume a run dir (or checkpoint) with its config; --steps N to extend."),
        ] = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
        quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
        force: ForceOpt = False,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        workers: Annotated[
            int, typer.Option(help="--backend ray: rollout actors (0 = one a cluster CPU, at most num_envs).")
        ] = 0,
    ) -> None:
        """Train a masked PPO or double-DQN scheduler, or (--agent setnet) one shape-free agent on generated
        workload families; checkpoints, metrics and a learning curve go to runs/. `--backend ray` steps PPO's
        envs in rollout actors on a Ray cluster (the same weights for a seed)."""
        from lab_learnsched.agents.config import TrainConfig
        from lab_learnsched.agents.rollouts import check_ray_agent
        from lab_learnsched.agents.shards import check_shards
        from lab_shared.backend import Backend
        from lab_shared.cli_utils import config_from_cli
        from lab_shared.config import validate_range
        from lab_shared.rundir import RunDir

        tasks = Backend(backend, address)
        validate_range("workers", workers, lo=0)
        if tasks.is_ray:  # the agent is known once the config is read: checked again below
            check_ray_agent(agent or _run_agent(resume) or "ppo", tasks)
        if agent == "setnet" or (agent is None and _run_agent(resume) == "setnet"):
            return _train_setnet(steps, seed, name, resume, config, set_, quiet, force, tasks, workers)
        run = None
        if resume is not None:
            if not resume.exists():
                raise LabError(f"nothing to resume at {resume}")
            # a run dir, its checkpoints/ folder or one checkpoint folder
            for cand in (resume, resume.parent, resume.parent.parent):
                if (cand / "config.json").is_file():
                    run = RunDir.open(cand)
                    break
            if run is None:
                raise LabError(f"{resume} is not inside a `lab sched train` run directory")
            config = config or run.path / "config.json"  # the run's own config unless one is given
        cfg = config_from_cli(
            TrainConfig,
            config,
            set_,
            agent=agent,
            workload=workload,
            steps=steps,
            buffer_pages=buffer_pages,
            queue_size=queue_size,
            seed=seed,
        )
        if cfg.agent not in ("ppo", "dqn"):
            raise LabError(f"--agent must be ppo or dqn, got '{cfg.agent}'")
        validate_range("steps", cfg.steps, lo=1)
        validate_range("num_envs", cfg.num_envs, lo=1)
        _check_numbers(cfg, _TRAIN_ZERO_OK)
        check_ray_agent(cfg.agent, tasks)
        check_shards(cfg, cfg.agent)
        tasks.start()  # Ray missing or unreachable: one line before the run folder exists
        if run is None:
            run = RunDir.create("sched-train", name or cfg.agent, cfg)
        else:  # --steps may extend the run; any other change needs --force (recorded in provenance.json)
            run.check_resume(cfg, force=force, allow=("steps",))
        if cfg.agent == "ppo":
            from lab_learnsched.agents.ppo import train_ppo as fn
        else:
            from lab_learnsched.agents.dqn import train_dqn as fn
        extra = {"backend": tasks, "workers": workers} if tasks.is_ray else {}
        res = fn(cfg, run, resume=resume, show_progress=not quiet, **extra)
        from lab_learnsched.bench import learning_curve

        learning_curve(str(run.path), run.plots / "learning_curve.png")
        run.write_results(res)
        typer.echo(
            f"{cfg.agent}: validation hit ratio {res['val_hit_ratio']:.3f} "
            f"(greedy-most-cached {res['val_greedy_hit_ratio']:.3f}); run: {run.path}"
        )

    @app.command(
        cls=config_defaults(
            "lab_learnsched.bench:BenchConfig",
            {
                "workload": "workloads",
                "policies": "policies",
                "seeds": "seeds",
                "buffer_pages": "buffer_pages",
                "queue_size": "queue_size",
                "buffer_sweep": "buffer_sweep",
                "queue_sweep": "queue_sweep",
            },
        )
    )
    def bench(
        workload: Annotated[
            str | None, typer.Option("--workload", "-w", help="Comma-separated workloads.")
        ] = None,
        policies: Annotated[str | None, typer.Option(help="Comma-separated scheduler specs.")] = None,
        agent: Annotated[
            list[str] | None, typer.Option(help="Agent checkpoint/run dir (repeatable).")
        ] = None,
        lookahead_agent: Annotated[
            bool, typer.Option(help="Also run each agent as agent+la (value lookahead).")
        ] = False,
        seeds: Annotated[int | None, typer.Option(help="Held-out test episodes per workload.")] = None,
        buffer_pages: Annotated[
            int | None, typer.Option(help="Pool size in pages (0 = the workload's).")
        ] = None,
        queue_size: Annotated[int | None, typer.Option(help="Queue window (0 = the workload's).")] = None,
        buffer_sweep: Annotated[str | None, typer.Option(help="Comma-separated pool sizes.")] = None,
        queue_sweep: Annotated[str | None, typer.Option(help="Comma-separated queue windows.")] = None,
        backend: Annotated[
            str,
            choice_option(
                choices=BENCH_BACKENDS,
                help="The simulator, a PostgreSQL server, or the simulator's episodes on Ray.",
            ),
        ] = "sim",
        address: AddressOpt = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
        json_: JsonOpt = False,
    ) -> None:
        """Every policy on held-out seeds, drift, buffer/queue sweeps and exact-optimum gaps: tables + plots."""
        from lab_learnsched.bench import BenchConfig, main_table_markdown, run_sim_bench
        from lab_learnsched.schedulers import agent_specs
        from lab_shared.cli_utils import config_from_cli
        from lab_shared.rundir import RunDir

        agents = agent_specs(agent, lookahead_agent)
        cfg = config_from_cli(
            BenchConfig,
            config,
            set_,
            workloads=_csv(workload),
            policies=_csv(policies),
            agents=agents or None,
            seeds=seeds,
            buffer_pages=buffer_pages,
            queue_size=queue_size,
            buffer_sweep=_csv(buffer_sweep, int),
            queue_sweep=_csv(queue_sweep, int),
            backend=backend,
        )
        if cfg.backend not in ("sim", "postgres", "ray"):
            raise LabError(f"--backend must be sim, postgres or ray, got '{cfg.backend}'")
        tasks = None
        if cfg.backend == "ray":
            from lab_shared.backend import Backend

            tasks = Backend("ray", address)
            tasks.start()  # Ray missing or unreachable: one line before any work
        from lab_learnsched.oracles import MAX_EXACT
        from lab_learnsched.workload_sources import load_workload

        _check_numbers(cfg, {"buffer_pages", "queue_size", "exact_batches", "exact_buffers"})
        if cfg.exact_size > MAX_EXACT:
            raise LabError(f"exact_size must be at most {MAX_EXACT} (exact optimum), got {cfg.exact_size}")
        for w in cfg.workloads:  # a bad workload is one line before the run folder and any work
            load_workload(w)
        run = RunDir.create("sched-bench", cfg.backend, cfg)
        if cfg.backend in ("sim", "ray"):
            out = run_sim_bench(cfg, run, tasks)
            if not json_:
                typer.echo(main_table_markdown(out))
        elif cfg.backend == "postgres":
            try:
                from lab_learnsched.pg.bench import run_bench as pg_run_bench
            except ImportError as e:
                raise LabError(f"the postgres backend is not available ({e})") from None
            out = pg_run_bench(cfg, run, echo=not json_)
        if json_:
            echo_json({"run": run.path, "results": out})
            return
        typer.echo(f"tables and plots: {run.path}")

    @app.command(
        cls=shown_defaults(
            {"workload": "default", "buffer_pages": "the workload's", "queue_size": "the workload's"}
        )
    )
    def simulate(
        workload: WorkloadOpt = None,
        policy: Annotated[
            str, typer.Option("--scheduler", help="Scheduler spec (fifo, greedy, ..., agent:PATH).")
        ] = "greedy",
        seed: Annotated[int, typer.Option()] = 0,
        buffer_pages: Annotated[
            int | None, typer.Option(help="Pool size in pages (0 = the workload's).")
        ] = None,
        queue_size: Annotated[int | None, typer.Option(help="Queue window (0 = the workload's).")] = None,
        replacement: Annotated[
            str,
            choice_option(choices=REPLACEMENTS, help="Buffer replacement: LRU or PostgreSQL's clock sweep."),
        ] = "lru",
        trace_out: Annotated[
            Path | None, typer.Option(help="Write the episode's queries as a trace.")
        ] = None,
    ) -> None:
        """Run one episode with one scheduler and print the order with per-query hits and reads."""
        from lab_learnsched.env import BufferPoolEnv
        from lab_learnsched.schedulers import make_scheduler
        from lab_learnsched.workload import MAX_QUEUE, save_trace
        from lab_learnsched.workload_sources import load_workload
        from lab_shared.report import markdown_table

        if seed < 0 or not 0 <= (queue_size or 0) <= MAX_QUEUE:
            raise LabError(f"--seed must be >= 0 and --queue-size in [0, {MAX_QUEUE}]")
        wl = load_workload(workload or "default")
        env = BufferPoolEnv(wl, buffer_pages, queue_size, replacement)
        sched = make_scheduler(policy, seed)
        env.reset(seed=seed)
        if trace_out is not None:
            qs = sorted(list(env.pending) + [q for q in env.slots if q is not None], key=lambda q: q.qid)
            save_trace(trace_out, wl.tables, qs)
        sched.reset(seed)
        rows, done, hits, reads = [], False, 0, 0
        while not done:
            _, _, done, _, info = env.step(sched.choose(env.state()))
            hits, reads = hits + info["hits"], reads + info["reads"]
            rows.append({k: info[k] for k in ("qid", "template", "hits", "reads", "now")})
        typer.echo(markdown_table(rows, floatfmt=".1f"))
        typer.echo(
            f"{sched.name}: hit ratio {hits / max(hits + reads, 1):.3f}, reads {reads}, makespan {env.now:.1f}"
        )

    @app.command("workload")
    def workload_cmd(
        spec: Annotated[
            str, typer.Argument(help="Built-in name, family:NAME:SEED, workload/trace file, or `gen`.")
        ] = "default",
        episodes: Annotated[int, typer.Option(help="Episodes to sample for the summary.")] = 20,
        export_trace: Annotated[
            Path | None, typer.Option(help="Write sampled episodes as one trace file.")
        ] = None,
        family: Annotated[
            str | None, choice_option(choices=FAMILIES, help="gen: workload family (see families.py).")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="gen: instance seed of the family.")] = None,
        out: Annotated[Path | None, typer.Option(help="gen: output workload file (.toml or .json).")] = None,
    ) -> None:
        """Validate a workload and summarise its tables, templates and query sizes; `workload gen --family F
        --seed S --out FILE` writes one instance of a randomized workload family as a workload file."""
        import numpy as np

        from lab_learnsched.workload import save_trace
        from lab_learnsched.workload_sources import load_workload
        from lab_shared.report import markdown_table

        if spec == "gen":
            from lab_learnsched.families import FAMILIES, write_family

            if family is None or seed is None or out is None:
                raise LabError(f"workload gen needs --family ({', '.join(FAMILIES)}), --seed and --out")
            write_family(family, seed, out)
            spec = str(out)
        elif family is not None or seed is not None or out is not None:
            raise LabError("--family, --seed and --out belong to `lab sched workload gen`")

        if not 1 <= episodes <= 10_000:
            raise LabError(f"--episodes must be in [1, 10000], got {episodes}")
        wl = load_workload(spec)
        qs = [q for s in range(episodes) for q in wl.generate(s)]
        typer.echo(
            f"workload {wl.name}: {len(wl.tables.names)} tables, {wl.tables.n_pages} pages, "
            f"{wl.queries} queries/episode ({wl.arrival}), suggested pool {wl.buffer_pages}, queue {wl.queue_size}"
            + (f", drift at query {wl.drift_at}" if wl.drift_at is not None else "")
        )
        rows = []
        for name in sorted({q.template for q in qs}):
            sizes = np.array([q.size for q in qs if q.template == name])
            kind = wl.templates[name].kind if name in wl.templates else "trace"
            rows.append(
                {
                    "template": name,
                    "kind": kind,
                    "count": len(sizes),
                    "pages_mean": float(sizes.mean()),
                    "pages_min": int(sizes.min()),
                    "pages_max": int(sizes.max()),
                }
            )
        typer.echo(markdown_table(rows, floatfmt=".1f"))
        if export_trace is not None:
            for i, q in enumerate(qs):
                q.qid = i
            save_trace(export_trace, wl.tables, qs)
            typer.echo(f"trace of {len(qs)} queries: {export_trace}")

    @app.command(
        "bench-families",
        cls=config_defaults(
            "lab_learnsched.familybench:FamilyBenchConfig",
            {"families": "families", "instances": "instances", "seeds": "seeds"},
        ),
    )
    def bench_families(
        families: Annotated[
            str | None,
            choice_option(choices=FAMILIES, separator=",", help="Comma-separated workload families."),
        ] = None,
        instances: Annotated[int | None, typer.Option(help="Test instances per family (seeds 0..).")] = None,
        seeds: Annotated[int | None, typer.Option(help="Test episodes per instance.")] = None,
        agent: Annotated[
            list[str] | None, typer.Option(help="Agent checkpoint/run dir (repeatable).")
        ] = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
        json_: JsonOpt = False,
    ) -> None:
        """Learned vs best heuristic (chosen per instance on validation) vs planner on generated families."""
        from lab_learnsched.familybench import FamilyBenchConfig, run_family_bench, summary_markdown
        from lab_learnsched.schedulers import agent_specs
        from lab_shared.cli_utils import config_from_cli
        from lab_shared.rundir import RunDir

        cfg = config_from_cli(
            FamilyBenchConfig,
            config,
            set_,
            families=_csv(families),
            instances=instances,
            seeds=seeds,
            agents=agent_specs(agent, False) or None,
        )
        from lab_learnsched.families import get_family

        for f in cfg.families:
            get_family(f)
        if cfg.instances < 1 or cfg.seeds < 1 or cfg.val_seeds < 1:
            raise LabError("--instances, --seeds and val_seeds must be >= 1")
        run = RunDir.create("sched-bench", "families", cfg)
        out = run_family_bench(cfg, run)
        if json_:
            echo_json({"run": run.path, "results": out})
            return
        typer.echo(summary_markdown(out["summary"]))
        typer.echo(f"tables: {run.path}")

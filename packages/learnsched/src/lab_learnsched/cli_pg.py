"""`lab sched pg up | load | status | probe | bench | down`: the scheduler on a real PostgreSQL.

Heavy imports (psycopg, numpy, torch) happen inside the commands so `lab --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab_shared.cli_utils import ConfigOpt, JsonOpt, SetOpt, choice_option, config_defaults, echo_json

DATASETS = ("tpch-like", "tpch")
ACCESS = ("exact", "estimated")  # pg/bench.py's ACCESS (that module imports numpy)

DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn", envvar="LAB_PG_DSN", help="Use this database instead of a cluster of ours (LAB_PG_DSN)."
    ),
]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        envvar="LAB_PG_DIR",
        help="Private folder of our throwaway cluster (default ~/.cache/lab/pg; /var/lib/lab/pg as root).",
    ),
]


def _redact_argv() -> None:
    """Hide passwords in sys.argv (a --dsn on the command line) before anything records it."""
    import sys

    from lab_learnsched.pg.conn import redact

    sys.argv[:] = [redact(a) if ("password" in a.lower() or "://" in a) else a for a in sys.argv]


def register(app: typer.Typer) -> None:
    """Add `lab sched pg ...` to the package's Typer app."""
    pg = typer.Typer(help="The scheduler on a real PostgreSQL: a throwaway cluster, data, probes, benchmark.",
                     no_args_is_help=True)  # fmt: skip
    app.add_typer(pg, name="pg")

    @pg.command()
    def up(
        shared_buffers: Annotated[
            str, typer.Option(help="Buffer pool size (PostgreSQL units, >= 128kB).")
        ] = "4MB",
        tcp: Annotated[
            bool,
            typer.Option(
                help="Also listen on 127.0.0.1 (scram-sha-256, random password in <dir>/pgpass, 0600)."
            ),
        ] = False,
        port: Annotated[int, typer.Option(help="With --tcp: TCP port on 127.0.0.1 (0 = a free one).")] = 0,
        dir_: DirOpt = None,
        dsn: DsnOpt = None,
    ) -> None:
        """Start a private throwaway cluster (Unix socket, peer auth, owner only) or check a --dsn."""
        from lab_learnsched.pg.cluster import MARKER, Cluster, create_cluster, default_dir
        from lab_learnsched.pg.conn import connect, ensure_extensions, redact
        from lab_shared.errors import LabError

        if dsn:
            with connect(dsn) as conn:
                exts = ensure_extensions(conn)
                sb = conn.execute("SHOW shared_buffers").fetchone()[0]
            typer.echo(f"using {redact(dsn)}: shared_buffers {sb}, extensions {', '.join(exts)}")
            return
        base = (dir_ or default_dir()).absolute()
        if (base / MARKER).is_file():
            c = Cluster.load(base)
            if tcp != c.tcp or (port and port != c.port):
                raise LabError(f"the cluster in {base} was made {'with' if c.tcp else 'without'} --tcp "
                               f"(port {c.port}): `lab sched pg down` it to change that")  # fmt: skip
            if not c.is_running():
                c.start()
            if shared_buffers and shared_buffers != c.shared_buffers:
                c.set_shared_buffers(shared_buffers)
            typer.echo(f"cluster up in {base} (shared_buffers {c.shared_buffers}): {c.dsn}")
            return
        c = create_cluster(base, shared_buffers or "4MB", port or None, tcp=tcp)
        with connect(c.dsn) as conn:
            exts = ensure_extensions(conn)
        typer.echo(f"cluster up in {base} (shared_buffers {c.shared_buffers}, {', '.join(exts)}): {c.dsn}")
        if c.tcp:
            typer.echo(f"TCP on 127.0.0.1:{c.port}, password in {c.passfile}: {c.tcp_dsn}")

    @pg.command()
    def down(
        dir_: DirOpt = None,
        keep: Annotated[bool, typer.Option(help="Only stop the server; keep its folder.")] = False,
    ) -> None:
        """Stop our cluster and remove what `up` made in --dir (nothing outside it)."""
        from lab_learnsched.pg.cluster import Cluster, default_dir

        base = dir_ or default_dir()
        c = Cluster.load(base)
        if keep:
            c.stop()
            typer.echo(f"stopped the cluster in {base} (kept)")
        else:
            c.destroy()
            typer.echo(f"stopped and removed the cluster in {base}")

    @pg.command()
    def status(dsn: DsnOpt = None, dir_: DirOpt = None) -> None:
        """Where the database is, its pool size and the loaded workload."""
        from lab_learnsched.pg.conn import connect, resolve
        from lab_learnsched.pg.load import read_load
        from lab_shared.errors import LabError

        target = resolve(dsn, dir_)
        with connect(target.dsn) as conn:
            ver = conn.execute("SHOW server_version").fetchone()[0]
            sb = conn.execute("SHOW shared_buffers").fetchone()[0]
            typer.echo(f"{target.label}: PostgreSQL {ver}, shared_buffers {sb}")
            try:
                meta, names = read_load(conn)
            except LabError as e:  # no workload yet is a normal state here
                typer.echo(f"workload: none ({e})")
                return
        typer.echo(
            f"workload {meta['load_id']} ({meta.get('dataset', 'tpch-like')}): scale {meta['scale']}, "
            f"seed {meta['seed']}, rows {meta['rows']}"
        )
        typer.echo("pages: " + ", ".join(f"{k} {v}" for k, v in meta["pages"].items()))
        typer.echo("templates: " + ", ".join(names))

    @pg.command()
    def load(
        dataset: Annotated[
            str,
            choice_option(
                choices=DATASETS,
                help="tpch-like (generated here, range templates that can be probed) or tpch (tpchgen-cli, "
                "the 22 TPC-H queries).",
            ),
        ] = "tpch-like",
        scale: Annotated[float, typer.Option(help="TPC-H scale factor (1.0 = 150,000 orders).")] = 0.2,
        seed: Annotated[int, typer.Option(help="Data generator seed.")] = 0,
        templates: Annotated[
            Path | None, typer.Option(help="Query template file (TOML; default: the bundled templates).")
        ] = None,
        dsn: DsnOpt = None,
        dir_: DirOpt = None,
    ) -> None:
        """Create the tables (TPC-H-like generated here, or TPC-H from tpchgen-cli), indexes and queries."""
        from lab_learnsched.pg.conn import connect, resolve
        from lab_learnsched.pg.load import load_dataset
        from lab_learnsched.pg.templates import load_templates
        from lab_shared.errors import LabError

        if dataset not in ("tpch-like", "tpch"):
            raise LabError(f"--dataset must be tpch-like or tpch, got '{dataset}'")
        if dataset == "tpch":
            from lab_learnsched.pg.tpch import QUERIES, load_tpch

            if templates is not None:
                raise LabError("--templates applies to the tpch-like dataset; tpch uses the 22 TPC-H queries")
            target = resolve(dsn, dir_)
            with connect(target.dsn) as conn:
                info = load_tpch(conn, scale, seed)
            typer.echo(
                f"loaded TPC-H scale {scale} in {info.seconds:.1f}s into {target.label}: rows {info.rows}"
            )
            typer.echo("pages: " + ", ".join(f"{k} {v}" for k, v in info.pages.items()))
            typer.echo(f"queries: {', '.join(QUERIES)}")
            return
        temps = load_templates(templates)
        target = resolve(dsn, dir_)
        with connect(target.dsn) as conn:
            info = load_dataset(conn, scale, seed, temps)
        typer.echo(f"loaded scale {scale} in {info.seconds:.1f}s into {target.label}: rows {info.rows}")
        typer.echo("pages: " + ", ".join(f"{k} {v}" for k, v in info.pages.items()))
        typer.echo(f"templates: {', '.join(t.name for t in temps)}")

    @pg.command()
    def probe(
        n: Annotated[int, typer.Option("-n", help="Instances to draw.")] = 32,
        seed: Annotated[int, typer.Option(help="Instance seed.")] = 0,
        trace_out: Annotated[
            Path | None, typer.Option(help="Write the instances as a simulator trace.")
        ] = None,
        dsn: DsnOpt = None,
        dir_: DirOpt = None,
    ) -> None:
        """Draw query instances, probe the blocks each reads per relation, print them (and write a trace)."""
        from lab_learnsched.pg.bench import PgWorkload
        from lab_learnsched.workload import save_trace
        from lab_shared.report import markdown_table

        wl = PgWorkload.open(dsn, dir_)
        insts = wl.instances(n, seed)
        qs = wl.queries(insts)
        rows = []
        for i, q in zip(insts, qs):
            row = {"qid": i.qid, "query": i.key(), "pages": q.size}
            row.update({rel: len(b) for rel, b in q.blocks.items()})
            rows.append(row)
        cols = ["qid", "query", "pages", *wl.tables.names]
        typer.echo(markdown_table([{c: r.get(c, 0) for c in cols} for r in rows]))
        if trace_out is not None:
            save_trace(trace_out, wl.tables, qs)
            typer.echo(f"trace of {len(qs)} queries over {wl.tables.n_pages} pages: {trace_out}")

    @pg.command()
    def estimate(
        sql: Annotated[
            list[str] | None, typer.Option("--sql", help="A read-only SELECT to estimate (repeatable).")
        ] = None,
        n: Annotated[
            int,
            typer.Option("-n", help="Also estimate N instances of the loaded workload vs their exact sets."),
        ] = 0,
        seed: Annotated[int, typer.Option(help="Instance seed (with -n).")] = 0,
        dsn: DsnOpt = None,
        dir_: DirOpt = None,
    ) -> None:
        """Blocks per relation a SELECT will read, estimated from EXPLAIN (no execution, no probing)."""
        from lab_learnsched.pg.bench import PgWorkload
        from lab_learnsched.pg.conn import connect
        from lab_learnsched.pg.estimate import Estimator, quality
        from lab_learnsched.pg.sqlcheck import check_select
        from lab_shared.errors import LabError
        from lab_shared.report import markdown_table

        if not sql and n <= 0:
            raise LabError("give --sql 'SELECT ...' (repeatable) and/or -n N")
        for i, q in enumerate(sql or []):
            check_select(q, f"--sql #{i + 1}")  # DML and the like: one line, before connecting
        wl = PgWorkload.open(dsn, dir_)
        with connect(wl.target.dsn) as conn:
            est = Estimator(conn, list(wl.tables.names))
            for i, q in enumerate(sql or []):
                blocks = est.estimate(q, None, where=f"--sql #{i + 1}")
                total = sum(len(b) for b in blocks.values())
                typer.echo(f"--sql #{i + 1}: {total} blocks: " + ", ".join(f"{r} {len(b)}/{est.rels[r].pages}"
                                                                          for r, b in blocks.items()))  # fmt: skip
        if n > 0:
            insts = wl.instances(n, seed)
            wl.access = "estimated"
            e = [q.blocks for q in wl.queries(insts)]
            x = [q.blocks for q in wl.exact_queries(insts)]
            res = quality(e, x, [i.template for i in insts])
            rows = [{"template": "all", **res["all"]}] + [
                {"template": k, **v} for k, v in res["templates"].items()
            ]
            typer.echo(markdown_table(rows, floatfmt=".3f"))

    @pg.command(
        "bench",
        cls=config_defaults(
            "lab_learnsched.pg.bench:PgBenchConfig",
            {
                "episodes": "episodes",
                "queries": "queries",
                "policies": "policies",
                "train_steps": "train_steps",
                "access": "access",
                "clients": "clients",
            },
        ),
    )
    def bench_cmd(
        episodes: Annotated[int | None, typer.Option(help="Held-out test episodes.")] = None,
        queries: Annotated[int | None, typer.Option(help="Queries per episode.")] = None,
        policies: Annotated[str | None, typer.Option(help="Comma-separated scheduler specs.")] = None,
        agent: Annotated[
            list[str] | None, typer.Option(help="Agent run dir/checkpoint (skips training).")
        ] = None,
        train_steps: Annotated[
            int | None, typer.Option(help="Simulation steps to train the learned policy.")
        ] = None,
        drop_os_cache: Annotated[
            bool,
            typer.Option(
                "--drop-os-cache",
                help="Root only: drop the OS page cache before every episode. This affects the WHOLE machine "
                "(every program's cached files), not just PostgreSQL.",
            ),
        ] = False,
        resume: Annotated[
            Path | None,
            typer.Option(help="Run folder of an interrupted `pg bench`: measure only what is missing."),
        ] = None,
        access: Annotated[
            str | None,
            choice_option(
                choices=ACCESS,
                help="Access sets the schedulers see: exact (probed/traced blocks) or estimated (from EXPLAIN).",
            ),
        ] = None,
        clients: Annotated[
            int | None, typer.Option(help="Concurrent client connections pulling from the scheduler's queue.")
        ] = None,
        dsn: DsnOpt = None,
        dir_: DirOpt = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
        json_: JsonOpt = False,
    ) -> None:
        """FIFO, greedy, lookahead, the exact optimum and a learned policy on the real database."""
        from lab_learnsched.pg.bench import PgBenchConfig, check_config, run_bench
        from lab_learnsched.pg.conn import redact_config
        from lab_learnsched.schedulers import agent_specs
        from lab_shared.cli_utils import config_from_cli
        from lab_shared.config import config_to_dict
        from lab_shared.errors import LabError
        from lab_shared.rundir import RunDir

        agents = agent_specs(agent, lookahead=True)
        if resume is not None:  # the run's own settings are the base; anything given must agree with them
            if not (resume / "pg_config.json").is_file():
                raise LabError(f"{resume} is not a `pg bench` run folder (no pg_config.json)")
            if config is not None:
                raise LabError("--resume continues with the run's own settings: drop --config")
            config = resume / "pg_config.json"
        cfg = config_from_cli(
            PgBenchConfig, config, set_, episodes=episodes, queries=queries,
            policies=[p.strip() for p in policies.split(",") if p.strip()] if policies else None,
            agents=agents or None, train_steps=train_steps, dsn=dsn, pg_dir=str(dir_) if dir_ else None,
            drop_os_cache=drop_os_cache or None, access=access, clients=clients,
        )  # fmt: skip
        check_config(cfg)  # bad input is one line, before a run folder exists
        real_dsn, cfg.dsn = cfg.dsn, ""  # the DSN (and any password in it) is passed on, never stored
        _redact_argv()  # the run's provenance records argv: a --dsn password must not reach it
        if resume is not None:
            run = RunDir.open(resume)
        else:
            run = RunDir.create("sched-bench", "postgres", redact_config(config_to_dict(cfg)))
        out = run_bench(cfg, run, echo=not json_, dsn=real_dsn or None)
        if json_:
            echo_json({"run": run.path, "results": out})
            return
        typer.echo(f"tables and plots: {run.path}")

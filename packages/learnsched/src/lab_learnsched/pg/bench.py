"""`lab sched bench --backend postgres` (and `lab sched pg bench`): schedulers on the real database.

1. The workload stored by `lab sched pg load` (templates + data) is turned into simulator queries by probing
   (cached). Held-out test episodes draw their instances with seeds 0.. (exact batches 500,000..); the
   learned policy trains in simulation on a trace of instances drawn with seeds 10,000,000+ (never tested).
2. Each episode, for each policy: cold reset, plan every instance once (identical warm state for all
   policies), then the closed loop: read pg_buffercache, rebuild the pool model from it, let the scheduler
   pick a queued query, run it with EXPLAIN (ANALYZE, BUFFERS). Reads, hits and times are PostgreSQL's.
3. Sim vs real: the order each policy ran is replayed in the simulator (clock sweep, started from the
   episode's pg_buffercache snapshot); predicted reads are compared with measured ones per query and per
   schedule.
4. Access sets (`access`): `exact` probes (range templates) or traces (TPC-H) the blocks of every instance;
   `estimated` derives them from EXPLAIN alone (estimate.py), for any SELECT; then the schedulers, the
   planner and the learned policy's training all see only the estimates, and `estimate_quality` compares
   them with the exact sets of the same instances (Jaccard, recall, precision).
5. Clients (`clients`): N connections pull from the scheduler's queue; whenever one is free the scheduler
   picks from the queue (its pool model: pg_buffercache plus the pages of the queries still running).
   Reads are PostgreSQL's per query, `stream_s` the wall time of the whole stream.
6. The bar (`heuristics`, `planner`): the best heuristic is chosen on validation episodes (seeds 900,000..)
   on the server; each learned agent is validated against it there (the safety net, safety.py) and its
   `guarded:` row runs the agent only when it read less, else the best heuristic.

Tables (Markdown + CSV) `pg_main`, `pg_exact`, `pg_agreement` and plots go to the run directory.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab_learnsched.pg import bridge
from lab_learnsched.pg.conn import Target, connect, redact_config, resolve
from lab_learnsched.pg.execute import PgExecutor, QueryRun, Snapshot
from lab_learnsched.pg.load import read_load, read_meta
from lab_learnsched.pg.probe import ProbeCache
from lab_learnsched.pg.templates import Domain, Instance, Template, check_templates, sample_instances
from lab_learnsched.safety import Verdict
from lab_learnsched.workload import Query, Tables, save_trace
from lab_shared.config import config_to_dict
from lab_shared.errors import LabError
from lab_shared.io import atomic_write_json, read_json
from lab_shared.logs import get_logger
from lab_shared.report import bar_plot, markdown_table, save_figure, write_table
from lab_shared.rundir import RunDir

log = get_logger("lab.sched.pg")

EXACT_SEED0 = 500_000
VAL_SEED0 = 900_000
TRAIN_SEED0 = 10_000_000
ACCESS = ("exact", "estimated")


@dataclass
class PgBenchConfig:
    policies: list[str] = field(default_factory=lambda: ["fifo", "greedy", "lookahead:2", "optimal"])
    agents: list[str] = field(default_factory=list)  # agent:PATH / agent+la:PATH specs
    learned: bool = True  # no agent given: train one (PPO, in simulation) on probed training instances
    episodes: int = 4  # held-out test episodes
    queries: int = 32  # queries per episode (all queued at t=0, the queue window takes `queue_size`)
    queue_size: int = 8
    exact_batches: int = 4  # batches of `exact_size` queries where the exact optimum is known
    exact_size: int = 8
    train_agent: str = "ppo"  # ppo | dqn
    train_steps: int = 40_000
    train_instances: int = 2_000
    train_envs: int = 8
    seed: int = 0
    drop_os_cache: bool = False  # root only; drops the page cache of the WHOLE machine before every episode
    shared_buffers: str = ""  # e.g. "3MB": run at this pool size (our cluster only; restored afterwards)
    dsn: str = ""  # default: $LAB_PG_DSN, else the cluster of `lab sched pg up`
    pg_dir: str = ""
    access: str = "exact"  # exact (probed / traced blocks) | estimated (from EXPLAIN, estimate.py)
    clients: int = 1  # concurrent client connections pulling from the scheduler's queue
    heuristics: list[str] = field(default_factory=list)  # the best-heuristic bar ([] = none; an agent is
    #   then validated against the policies that are heuristics)
    planner: str = ""  # e.g. "planner" (planner.py); "" = none
    val_episodes: int = 2  # validation episodes on the server for the best heuristic and the safety net
    learned_la: bool = True  # a trained agent also runs as agent+la (its value as a one-step lookahead)
    quality: bool = True  # access=estimated: compare the estimates with the exact sets of the test episodes


def check_config(cfg: PgBenchConfig) -> None:
    """Bad settings as one line, before anything is written or measured."""
    if cfg.access not in ACCESS:
        raise LabError(f"--access must be exact or estimated, got '{cfg.access}'")
    if cfg.clients < 1:
        raise LabError(f"--clients must be >= 1, got {cfg.clients}")
    if cfg.episodes < 1 or cfg.queries < 1 or cfg.queue_size < 1:
        raise LabError("postgres bench needs episodes, queries and queue_size >= 1")
    if cfg.exact_size > 8:
        raise LabError("the exact optimum needs batches of at most 8 queries (exact_size <= 8)")
    if cfg.exact_batches < 0 or cfg.exact_size < 1:
        raise LabError("exact_batches must be >= 0 and exact_size >= 1")
    if cfg.val_episodes < 1:
        raise LabError("val_episodes must be >= 1")
    from lab_learnsched.schedulers import make_scheduler

    for spec in [*cfg.policies, *cfg.heuristics, *([cfg.planner] if cfg.planner else [])]:
        make_scheduler(spec)  # an unknown or malformed spec is one line here


def from_sim_config(cfg: Any) -> PgBenchConfig:
    """Map `lab sched bench`'s BenchConfig (policies, agents, seeds, queue, exact batches) onto ours."""
    if isinstance(cfg, PgBenchConfig):
        return cfg
    out = PgBenchConfig()
    if getattr(cfg, "policies", None):
        out.policies = list(cfg.policies)
    out.agents = list(getattr(cfg, "agents", []) or [])
    out.episodes = int(getattr(cfg, "seeds", out.episodes) or out.episodes)
    out.queue_size = int(getattr(cfg, "queue_size", 0) or out.queue_size)
    out.exact_batches = int(getattr(cfg, "exact_batches", out.exact_batches))
    out.exact_size = int(getattr(cfg, "exact_size", out.exact_size))
    out.heuristics = list(getattr(cfg, "heuristics", []) or [])
    out.planner = str(getattr(cfg, "planner", "") or "")
    return out


# --- the workload ----------------------------------------------------------------------------------------
@dataclass
class PgWorkload:
    target: Target
    meta: dict
    templates: dict[str, Template]
    domains: dict[str, Domain]
    tables: Tables
    cache: Any  # ProbeCache (range templates: probed) or TraceCache (TPC-H: traced)
    dataset: str = "tpch-like"
    access: str = "exact"  # what `queries` returns: exact (probed/traced) or estimated (EXPLAIN) blocks

    @classmethod
    def open(cls, dsn: str | None = None, pg_dir: str | Path | None = None) -> PgWorkload:
        target = resolve(dsn or None, Path(pg_dir) if pg_dir else None)
        with connect(target.dsn) as conn:
            meta, _ = read_load(conn)
            if meta.get("dataset") == "tpch":
                from lab_learnsched.pg.tpch import TABLES, read_queries
                from lab_learnsched.pg.trace import TraceCache

                meta, temps = read_queries(conn)
                pages = meta["pages"]
                rels = [t for t in TABLES if t in pages] + sorted(r for r in pages if r not in TABLES)
                tables = Tables(tuple(rels), tuple(max(1, int(pages[r])) for r in rels))
                return cls(target, meta, temps, {}, tables, TraceCache(meta["load_id"]), "tpch")
            meta, temps = read_meta(conn)
            domains = check_templates(conn, temps)
        tables = bridge.make_tables(temps, meta["pages"])
        return cls(target, meta, {t.name: t for t in temps}, domains, tables, ProbeCache(meta["load_id"]))

    def instances(self, n: int, seed: int) -> list[Instance]:
        if self.dataset == "tpch":
            from lab_learnsched.pg.tpch import stream_instances

            return stream_instances(n, seed, float(self.meta["scale"]))
        return sample_instances(list(self.templates.values()), self.domains, n, seed)

    def queries(self, insts: list[Instance]) -> list[Query]:
        return self.exact_queries(insts) if self.access == "exact" else self.estimated_queries(insts)

    def estimated_queries(self, insts: list[Instance]) -> list[Query]:
        from lab_learnsched.pg.estimate import estimate_instances

        with connect(self.target.dsn) as conn:
            blocks = estimate_instances(conn, self.templates, insts, list(self.tables.names))
        return bridge.to_queries(self.tables, insts, blocks)

    def exact_queries(self, insts: list[Instance]) -> list[Query]:
        if self.dataset == "tpch":
            blocks = self.cache.get_or_trace(self.target, self.templates, insts, list(self.tables.names),
                                             self.meta["pages"])  # fmt: skip
        else:
            with connect(self.target.dsn) as conn:
                blocks = self.cache.get_or_probe(conn, self.templates, insts)
        return bridge.to_queries(self.tables, insts, blocks)


# --- one episode of one policy on the real database ------------------------------------------------------
@dataclass
class EpisodeRun:
    policy: str
    order: list[int]
    runs: list[QueryRun]
    predicted: np.ndarray  # per executed query, exact-layout clock model from the start snapshot
    predicted_packed: np.ndarray  # the model the schedulers see (workload buffers only)
    predicted_lru: np.ndarray
    decide_ms: float
    reset: dict
    start: Snapshot
    pgss_reads: int | None = None  # pg_stat_statements' count of the episode's reads (execution + planning)
    stream_ms: float = 0.0  # wall time of the closed loop: first pick to last query done

    @property
    def measured(self) -> np.ndarray:
        return np.array([r.reads for r in self.runs], dtype=np.int64)


def run_episode(
    ex: PgExecutor, wl: PgWorkload, insts: list[Instance], qs: list[Query], sched, queue_size: int, seed: int,
    clients: int = 1,
) -> EpisodeRun:  # fmt: skip
    """Reset, warm, then let `sched` pick from the queue with the live pool, executing each pick
    (on `clients` connections at once: a free client takes the scheduler's next pick)."""
    reset = ex.reset()
    ex.warm(wl.templates, insts)
    start = ex.snapshot()
    stats = ex.stats_reset()
    cap = bridge.capacity(start)
    sched.reset(seed)
    pending = deque(qs)
    slots: list[Query | None] = [pending.popleft() if pending else None for _ in range(queue_size)]
    t0 = time.perf_counter()
    if clients == 1:
        order, runs, decide = _serial(ex, wl, insts, sched, slots, pending, cap)
    else:
        order, runs, decide = _concurrent(ex, wl, insts, sched, slots, pending, cap, clients)
    stream_ms = (time.perf_counter() - t0) * 1000
    seq = [qs[i] for i in order]
    pgss = ex.stats_reads() if stats else None
    return EpisodeRun(
        getattr(sched, "name", "?"), order, runs,
        bridge.predict_reads(bridge.exact_layout_pool(wl.tables, start), seq),
        bridge.predict_reads(bridge.pool_from_snapshot(wl.tables, start, "clock", cap), seq),
        bridge.predict_reads(bridge.pool_from_snapshot(wl.tables, start, "lru", cap), seq),
        decide * 1000, reset, start, pgss, stream_ms,
    )  # fmt: skip


def _pick(sched, slots: list, pending: deque, pool, done: int) -> Query:
    """Ask the scheduler for a slot, take its query out of the queue and refill the slot."""
    from lab_learnsched.schedulers import SchedState

    a = sched.choose(SchedState(list(slots), pool, 0.0, list(pending), done))
    q = slots[a]
    if q is None:
        raise LabError(f"scheduler {getattr(sched, 'name', sched)} picked an empty slot")
    slots[a] = pending.popleft() if pending else None
    return q


def _serial(ex: PgExecutor, wl: PgWorkload, insts, sched, slots, pending, cap: int):
    order: list[int] = []
    runs: list[QueryRun] = []
    decide = 0.0
    while any(q is not None for q in slots):
        pool = bridge.pool_from_snapshot(wl.tables, ex.snapshot(), "clock", cap)
        t0 = time.perf_counter()
        q = _pick(sched, slots, pending, pool, len(order))
        decide += time.perf_counter() - t0
        runs.append(ex.run(wl.templates[insts[q.qid].template], insts[q.qid]))
        order.append(q.qid)
    return order, runs, decide


def _concurrent(ex: PgExecutor, wl: PgWorkload, insts, sched, slots, pending, cap: int, clients: int):
    """`clients` connections; each free one gets the scheduler's pick. The pool model is pg_buffercache
    plus the pages of the queries still running (they are being read in now)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    workers = [PgExecutor(wl.target, list(wl.tables.names)) for _ in range(clients)]
    idle = list(range(clients))[::-1]
    running: dict[Any, tuple[int, Query]] = {}
    done: dict[int, QueryRun] = {}
    order: list[int] = []
    decide = 0.0
    try:
        with ThreadPoolExecutor(clients, thread_name_prefix="pg-client") as pool_ex:
            while running or any(q is not None for q in slots):
                while idle and any(q is not None for q in slots):
                    pool = bridge.pool_from_snapshot(wl.tables, ex.snapshot(), "clock", cap)
                    t0 = time.perf_counter()
                    for _, rq in running.values():
                        pool.access(rq.pages)
                    q = _pick(sched, slots, pending, pool, len(order))
                    decide += time.perf_counter() - t0
                    w = idle.pop()
                    inst = insts[q.qid]
                    running[pool_ex.submit(workers[w].run, wl.templates[inst.template], inst)] = (w, q)
                    order.append(q.qid)
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in finished:
                    w, q = running.pop(f)
                    idle.append(w)
                    done[q.qid] = f.result()  # a failed query raises its LabError here
    finally:
        for w in workers:
            w.close()
    return order, [done[i] for i in order], decide


def episode_to_json(ep: EpisodeRun, spec: str, keys: list[str]) -> dict:
    """One finished episode as JSON (the run folder's record that makes `pg bench` resumable)."""
    return {
        "spec": spec, "instances": keys, "policy": ep.policy, "order": ep.order,
        "runs": [asdict(r) for r in ep.runs], "predicted": ep.predicted, "predicted_packed": ep.predicted_packed,
        "predicted_lru": ep.predicted_lru, "decide_ms": ep.decide_ms, "reset": ep.reset, "pgss_reads": ep.pgss_reads,
        "stream_ms": ep.stream_ms,
        "start": {"nbuffers": ep.start.nbuffers, "relation": ep.start.relation, "block": ep.start.block,
                  "usage": ep.start.usage},
    }  # fmt: skip


def episode_from_json(d: Any, spec: str, path: Path) -> EpisodeRun:
    try:
        if d["spec"] != spec:
            raise LabError(f"{path}: recorded for policy {d['spec']}, expected {spec} (start a new run)")
        st = d["start"]
        return EpisodeRun(
            d["policy"], [int(x) for x in d["order"]], [QueryRun(**r) for r in d["runs"]],
            np.asarray(d["predicted"], np.int64), np.asarray(d["predicted_packed"], np.int64),
            np.asarray(d["predicted_lru"], np.int64), float(d["decide_ms"]), dict(d["reset"]),
            Snapshot(int(st["nbuffers"]), list(st["relation"]), np.asarray(st["block"], np.int64),
                     np.asarray(st["usage"], np.int64)),
            d.get("pgss_reads"), float(d.get("stream_ms", 0.0)),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        raise LabError(
            f"corrupt episode record {path}: {e} (delete it to measure that episode again)"
        ) from None


# --- training the learned policy in simulation -----------------------------------------------------------
def train_in_sim(
    cfg: PgBenchConfig, wl: PgWorkload, cap: int, out_dir: Path, show_progress: bool = True
) -> str:
    """Probe training instances, write them as a trace, train an agent on it (clock pool of `cap` pages)."""
    from lab_learnsched.agents.config import TrainConfig

    insts = wl.instances(cfg.train_instances, TRAIN_SEED0 + cfg.seed)
    log.info("probing %d training instances (cached after the first time)", len(insts))
    trace = save_trace(out_dir / "train_trace.json", wl.tables, wl.queries(insts))
    tc = TrainConfig(
        agent=cfg.train_agent, workload=str(trace), buffer_pages=cap, queue_size=cfg.queue_size, policy="clock",
        steps=cfg.train_steps, num_envs=cfg.train_envs, seed=cfg.seed, eval_every=max(1, cfg.train_steps // 4),
        eval_episodes=8, ckpt_every=0,
    )  # fmt: skip
    run = RunDir.create("sched-train", f"pg-{cfg.train_agent}", tc)
    if cfg.train_agent == "ppo":
        from lab_learnsched.agents.ppo import train_ppo as train
    elif cfg.train_agent == "dqn":
        from lab_learnsched.agents.dqn import train_dqn as train
    else:
        raise LabError(f"train_agent must be ppo or dqn, got '{cfg.train_agent}'")
    res = train(tc, run, show_progress=show_progress)
    run.write_results(res)
    log.info("trained %s in simulation: %s", cfg.train_agent, run.path)
    return f"agent:{run.path}"


# --- the benchmark ---------------------------------------------------------------------------------------
def labels_for(specs: list[str]) -> dict[str, str]:
    """fifo, greedy, ...; agents as learned / learned+la (plus the run folder when several are compared)."""
    paths = {s.partition(":")[2] for s in specs if s.startswith("agent")}
    return {s: _label(s, len(paths) > 1) for s in specs}


def _label(spec: str, several: bool) -> str:
    if not spec.startswith("agent"):
        return spec
    kind, _, path = spec.partition(":")
    name = "learned" if kind == "agent" else "learned+la"
    if several:
        p = Path(path)
        name += f"[{p.name if not p.name.startswith('step-') else p.parent.parent.name}]"
    return name


def _summary(policy: str, eps: list[EpisodeRun]) -> dict:
    reads = np.array([e.measured.sum() for e in eps], dtype=float)
    hits = np.array([sum(r.hits for r in e.runs) for e in eps], dtype=float)
    pred = np.array([e.predicted.sum() for e in eps], dtype=float)
    err = np.abs(pred - reads) / np.maximum(reads, 1)
    return {
        "policy": policy,
        "episodes": len(eps),
        "reads": float(reads.mean()),
        "reads_std": float(reads.std()),
        "hits": float(hits.mean()),
        "hit_ratio": float(np.mean(hits / np.maximum(hits + reads, 1))),
        "query_ms": float(np.mean([sum(r.wall_ms for r in e.runs) for e in eps])),
        "exec_ms": float(np.mean([sum(r.exec_ms for r in e.runs) for e in eps])),
        "decide_ms": float(np.mean([e.decide_ms for e in eps])),
        "stream_s": float(np.mean([e.stream_ms for e in eps])) / 1000,
        "in_flight": in_flight(eps),
        "sim_reads": float(pred.mean()),
        "sim_err": float(err.mean()),
        "sim_err_max": float(err.max()),
    }


def in_flight(eps: list[EpisodeRun]) -> float:
    """Mean number of queries running at once: the queries' summed wall time over the stream's wall time.
    With N clients a slow scheduler keeps clients idle while it decides, so this can be far below N (and
    fewer queries at once evict each other less: compare reads only at similar values)."""
    v = [sum(r.wall_ms for r in e.runs) / e.stream_ms for e in eps if e.stream_ms > 0]
    return float(np.mean(v)) if v else 0.0


def run_bench(
    cfg: Any, run: RunDir, show_progress: bool = True, echo: bool = True, dsn: str | None = None
) -> dict:
    """Everything in the module docstring. `cfg`: a PgBenchConfig or `lab sched bench`'s BenchConfig.

    `dsn` (else cfg.dsn, else $LAB_PG_DSN / the cluster) is the database; only its redacted form is written.
    Resumable: every finished episode is stored in `<run>/episodes/`; calling this again on the same run
    folder (same settings, same loaded data) measures only the missing ones.
    With `echo`, the main table and the agreement line are printed at the end (for the CLI)."""
    cfg = from_sim_config(cfg)
    check_config(cfg)
    dsn = dsn or cfg.dsn
    stored = redact_config(config_to_dict(cfg))  # a DSN's password never reaches the run folder
    stored_path = run.path / "pg_config.json"
    if stored_path.is_file():  # resuming: the same settings or nothing
        old = read_json(stored_path)
        diff = sorted(k for k in set(old) | set(stored) if old.get(k) != stored.get(k))
        if diff:
            raise LabError(f"cannot resume {run.path}: settings differ from the run's ({', '.join(diff)})")
    else:
        atomic_write_json(stored_path, stored)
    wl = PgWorkload.open(dsn, cfg.pg_dir)
    wl.access = cfg.access
    cluster = wl.target.cluster
    if cfg.shared_buffers and cluster is None:
        raise LabError("shared_buffers can only be changed on our own cluster (not on a --dsn server)")
    old = cluster.shared_buffers if cluster else ""
    if cfg.shared_buffers and cluster is not None:
        with connect(wl.target.dsn) as conn:
            old = conn.execute("SHOW shared_buffers").fetchone()[0]
        cluster.set_shared_buffers(cfg.shared_buffers)
    try:
        out = _bench(cfg, run, wl, show_progress)
    finally:
        if cfg.shared_buffers and cluster is not None and old != cfg.shared_buffers:
            cluster.set_shared_buffers(old)
    if echo:
        print(headline(out), flush=True)
    return out


def _bench(cfg: PgBenchConfig, run: RunDir, wl: PgWorkload, show_progress: bool) -> dict:
    from lab_learnsched.schedulers import HEURISTICS, make_scheduler

    t_start = time.time()
    test = [wl.instances(cfg.queries, e) for e in range(cfg.episodes)]
    exact = [wl.instances(cfg.exact_size, EXACT_SEED0 + b) for b in range(cfg.exact_batches)]
    t_est = time.perf_counter()
    test_q = [wl.queries(i) for i in test]
    access_s = time.perf_counter() - t_est
    exact_q = [wl.queries(i) for i in exact]
    state_path = run.path / "pg_state.json"
    state = read_json(state_path) if state_path.is_file() else {}
    if state and state.get("load_id") != wl.meta["load_id"]:
        raise LabError(f"cannot resume {run.path}: it measured load {state.get('load_id')}, the database now "
                       f"holds load {wl.meta['load_id']} (start a new run)")  # fmt: skip
    with PgExecutor(wl.target, list(wl.tables.names), cfg.drop_os_cache) as ex:
        if not ex.reset()["os_cache_dropped"]:
            log.warning("OS page cache not dropped (not asked with --drop-os-cache, not root, or a --dsn "
                        "server): reads may be served from it; read counts are unaffected, times are not")  # fmt: skip
        ex.warm(wl.templates, test[0])
        cap = bridge.capacity(ex.snapshot())
        agents = list(state.get("agents") or cfg.agents)
        if not agents and cfg.learned:
            trained = train_in_sim(cfg, wl, cap, run.path, show_progress)
            agents = [trained] + ([trained.replace("agent:", "agent+la:", 1)] if cfg.learned_la else [])
        atomic_write_json(state_path, {"load_id": wl.meta["load_id"], "agents": agents, "capacity": cap})
        # the bar: best heuristic among these (validation episodes), the planner
        bar = list(cfg.heuristics) or ([p for p in cfg.policies if p in HEURISTICS] if agents else [])
        planner = [cfg.planner] if cfg.planner else []
        specs = list(dict.fromkeys(list(cfg.policies) + bar + planner + agents))
        labels = labels_for(specs + ["optimal"])
        scheds = [(s, make_scheduler(s, cfg.seed)) for s in specs]
        ep_dir = run.path / "episodes"
        done = len(list(ep_dir.glob("*.json"))) if ep_dir.is_dir() else 0
        if done:
            log.info("resuming %s: %d episode(s) already measured are not redone", run.path, done)

        def episode(
            kind: str, i: int, k: int, spec: str, insts, qs, sched, queue: int, seed: int, clients: int = 1
        ) -> EpisodeRun:
            path = ep_dir / f"{kind}-{i:04d}-{k:02d}.json"
            if path.is_file():
                return episode_from_json(read_json(path), spec, path)
            ep = run_episode(ex, wl, insts, qs, sched, queue, seed, clients)
            atomic_write_json(path, episode_to_json(ep, spec, [x.key() for x in insts]))
            return ep

        # validation episodes on the server: the best heuristic, and each agent against it (the safety net)
        best, verdicts, val_reads = None, {}, {}
        checked = [s for s in agents if s.startswith("agent:")]
        if bar:
            val = [wl.instances(cfg.queries, VAL_SEED0 + v) for v in range(cfg.val_episodes)]
            val_q = [wl.queries(i) for i in val]
            for k, (spec, sched) in enumerate(scheds):
                if spec in bar or spec in checked:
                    eps = [episode("val", v, k, spec, i, q, sched, cfg.queue_size, VAL_SEED0 + v, cfg.clients)
                           for v, (i, q) in enumerate(zip(val, val_q))]  # fmt: skip
                    val_reads[spec] = float(np.mean([e.measured.sum() for e in eps]))
            best = min(bar, key=lambda h: val_reads[h])
            for spec in checked:
                v = Verdict(
                    labels[spec], best, val_reads[spec], val_reads[best], val_reads[spec] < val_reads[best]
                )
                verdicts[spec] = v
                log.info("safety net: %s %s", labels[spec], v.status)

        main: dict[str, list[EpisodeRun]] = {s: [] for s in specs}
        for e, (insts, qs) in enumerate(zip(test, test_q)):
            for k, (spec, sched) in enumerate(scheds):
                main[spec].append(
                    episode("main", e, k, spec, insts, qs, sched, cfg.queue_size, e, cfg.clients)
                )
                log.info("episode %d %s: reads %d", e, labels[spec], int(main[spec][-1].measured.sum()))
        ex_specs = [s for s in specs if s.partition(":")[0] != "optimal"] + ["optimal"]
        small: dict[str, list[EpisodeRun]] = {s: [] for s in ex_specs}
        for b, (insts, qs) in enumerate(zip(exact, exact_q)):
            for k, spec in enumerate(ex_specs):
                sched = make_scheduler(spec, cfg.seed)
                small[spec].append(
                    episode("exact", b, k, spec, insts, qs, sched, cfg.exact_size, EXACT_SEED0 + b)
                )
    out = _tables(main, small, specs, labels)
    if best is not None:
        out["pg_main"] = _with_bar(out["pg_main"], main, specs, labels, best, cfg.planner, verdicts)
        out["best_heuristic"] = {"best": best, "validation_reads": {labels[s]: r for s, r in val_reads.items()},
                                 "val_episodes": cfg.val_episodes}  # fmt: skip
        out["safety"] = [v.to_dict() for v in verdicts.values()]
    if cfg.access == "estimated" and cfg.quality:
        out["estimate_quality"] = _quality(wl, test, test_q)
    out["meta"] = {
        "load": wl.meta, "target": wl.target.label, "capacity": cap, "nbuffers": ex.nbuffers,
        "agents": agents, "reset": main[specs[0]][0].reset, "seconds": round(time.time() - t_start, 1),
        "os_cache_dropped": bool(main[specs[0]][0].reset.get("os_cache_dropped")), "access": cfg.access,
        "clients": cfg.clients, "access_seconds": round(access_s, 2),
    }  # fmt: skip
    _write(run, out, {labels[s]: eps for s, eps in main.items()})
    return out


def _with_bar(rows: list[dict], main: dict, specs: list[str], labels: dict, best: str, planner: str,
              verdicts: dict) -> list[dict]:  # fmt: skip
    """pg_main with the best-heuristic row, each agent's guarded row (the agent's episodes if it passed
    validation, else the best heuristic's) and vs_best / wins_vs_best / gap_to_planner, paired per episode."""
    from lab_learnsched.bench import compare_rows

    by = {labels[s]: s for s in specs}
    for r in rows:
        r["_reads"] = [float(e.measured.sum()) for e in main[by[r["policy"]]]]
    out = list(rows)
    for spec, v in verdicts.items():
        src = next(r for r in rows if r["policy"] == (labels[spec] if v.passed else labels[best]))
        row = next(r for r in rows if r["policy"] == labels[spec])
        row["validation"] = v.status
        out.append({**src, "policy": f"guarded:{labels[spec]}", "validation": v.status})
    return compare_rows(out, labels[best], labels.get(planner) if planner else None)


def _quality(wl: PgWorkload, test: list[list[Instance]], test_q: list[list[Query]]) -> dict:
    """Estimated vs exact (probed / traced) block sets of the test episodes' instances."""
    from lab_learnsched.pg.estimate import quality

    insts = [i for ep in test for i in ep]
    est = [q.blocks for ep in test_q for q in ep]
    try:
        exact = [q.blocks for q in wl.exact_queries(insts)]
    except LabError as e:  # e.g. tracing needs our own cluster
        return {"error": str(e)}
    return quality(est, exact, [i.template for i in insts])


def _tables(main: dict, small: dict, specs: list[str], labels: dict[str, str]) -> dict:
    out: dict[str, Any] = {"pg_main": [], "pg_exact": [], "pg_agreement": [], "schedules": []}
    for spec in specs:
        out["pg_main"].append(_summary(labels[spec], main[spec]))
    opt = np.array([e.measured.sum() for e in small["optimal"]], dtype=float)
    opt_sim = np.array([e.predicted_packed.sum() for e in small["optimal"]], dtype=float)
    for spec, eps in small.items() if opt.size else ():  # exact_batches=0: no exact table
        row = _summary("optimal (exact)" if spec == "optimal" else labels[spec], eps)
        reads = np.array([e.measured.sum() for e in eps], dtype=float)
        row["optimum_reads"] = float(opt.mean())
        row["gap_opt"] = float(np.mean((reads - opt) / np.maximum(opt, 1)))
        row["optimum_sim_reads"] = float(opt_sim.mean())
        out["pg_exact"].append(row)
    # agreement: every schedule (policy x episode), measured vs predicted, under three pool models
    allq_meas, allq_pred = [], []
    for group, runs in (("main", main), ("exact", small)):
        for spec, eps in runs.items():
            for i, e in enumerate(eps):
                m = e.measured
                allq_meas.append(m)
                allq_pred.append(e.predicted)
                out["schedules"].append({
                    "set": group, "policy": labels[spec], "episode": i, "measured": int(m.sum()),
                    "clock_exact": int(e.predicted.sum()), "clock_packed": int(e.predicted_packed.sum()),
                    "lru": int(e.predicted_lru.sum()), "hits": int(sum(r.hits for r in e.runs)),
                    "plan_reads": int(sum(r.plan_reads for r in e.runs)), "pgss_reads": e.pgss_reads,
                    "order": e.order,
                })  # fmt: skip
    # pg_stat_statements counts the same statements independently (execution + planning reads)
    checked = [s for s in out["schedules"] if s["pgss_reads"] is not None]
    out["pgss_check"] = {
        "schedules": len(checked),
        "explain_reads": int(sum(s["measured"] + s["plan_reads"] for s in checked)),
        "pgss_reads": int(sum(s["pgss_reads"] for s in checked)),
    }
    meas = np.concatenate(allq_meas)
    sched_m = np.array([s["measured"] for s in out["schedules"]], dtype=float)
    for model in ("clock_exact", "clock_packed", "lru"):
        p = np.array([s[model] for s in out["schedules"]], dtype=float)
        rel = np.abs(p - sched_m) / np.maximum(sched_m, 1)
        row = {
            "model": model,
            "schedules": len(sched_m),
            "measured_total": int(sched_m.sum()),
            "predicted_total": int(p.sum()),
            "total_err": float((p.sum() - sched_m.sum()) / max(sched_m.sum(), 1)),
            "schedule_err_mean": float(rel.mean()),
            "schedule_err_max": float(rel.max()),
            "within_10pct": float(np.mean(rel <= 0.10)),
        }
        if model == "clock_exact":
            pq = np.concatenate(allq_pred)
            row["query_mae"] = float(np.mean(np.abs(pq - meas)))
            row["query_exact"] = float(np.mean(pq == meas))
            row["query_corr"] = float(np.corrcoef(pq, meas)[0, 1]) if meas.std() > 0 else 1.0
        out["pg_agreement"].append(row)
    return out


MAIN_COLS = [
    "policy",
    "reads",
    "reads_std",
    "hits",
    "hit_ratio",
    "query_ms",
    "stream_s",
    "in_flight",
    "decide_ms",
    "sim_reads",
    "sim_err",
]
BAR_COLS = ["vs_best", "wins_vs_best", "gap_to_planner", "validation"]
EXACT_COLS = ["policy", "reads", "hit_ratio", "optimum_reads", "gap_opt", "query_ms", "sim_reads"]


def main_rows(out: dict) -> list[dict]:
    """pg_main as table rows: the main columns, plus the bar's columns where a best heuristic was chosen."""
    rows = out["pg_main"]
    cols = MAIN_COLS + [c for c in BAR_COLS if any(c in r for r in rows)]
    return [{k: r.get(k, "") for k in cols} for r in rows]


def quality_rows(q: dict) -> list[dict]:
    if not q or "all" not in q:
        return []
    return [{"template": "all", **q["all"]}] + [{"template": n, **r} for n, r in q["templates"].items()]


def _write(run: RunDir, out: dict, main: dict[str, list[EpisodeRun]]) -> None:
    write_table(main_rows(out), run.path / "pg_main")
    if quality_rows(out.get("estimate_quality", {})):
        write_table(quality_rows(out["estimate_quality"]), run.path / "pg_estimate_quality")
    write_table([{k: r[k] for k in EXACT_COLS} for r in out["pg_exact"]], run.path / "pg_exact")
    write_table(out["pg_agreement"], run.path / "pg_agreement")
    write_table(
        [{k: v for k, v in s.items() if k != "order"} for s in out["schedules"]], run.path / "pg_schedules"
    )
    labels = [r["policy"] for r in out["pg_main"]]
    bar_plot(run.plots / "pg_reads.png", labels, [r["reads"] for r in out["pg_main"]], "shared reads per episode",
             title="PostgreSQL: shared reads per policy", yerr=[r["reads_std"] for r in out["pg_main"]])  # fmt: skip
    _agreement_plot(run.plots / "pg_sim_vs_real.png", main)
    run.write_results(out)


def _agreement_plot(path: Path, main: dict[str, list[EpisodeRun]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for label, eps in main.items():
        m = np.concatenate([e.measured for e in eps])
        p = np.concatenate([e.predicted for e in eps])
        a1.scatter(m, p, s=8, alpha=0.6, label=label)
        a2.scatter([e.measured.sum() for e in eps], [e.predicted.sum() for e in eps], s=24, label=label)
    for ax, title in ((a1, "per query"), (a2, "per schedule")):
        lo, hi = ax.get_xlim()
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
        ax.set_xlabel("PostgreSQL shared reads (measured)")
        ax.set_ylabel("simulator reads (predicted)")
        ax.set_title(title)
    a1.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def headline(out: dict) -> str:
    """A short text summary: the main table and the agreement figure."""
    main = markdown_table(main_rows(out), floatfmt=".3f")
    agr = next(r for r in out["pg_agreement"] if r["model"] == "clock_exact")
    chk = out.get("pgss_check") or {}
    pgss = (
        f"; pg_stat_statements counted {chk['pgss_reads']} reads where EXPLAIN reported {chk['explain_reads']}"
        if chk.get("schedules")
        else ""
    )
    extra = ""
    if out.get("best_heuristic"):
        extra += f"\n\nbest heuristic on {out['best_heuristic']['val_episodes']} validation episode(s): "
        extra += out["best_heuristic"]["best"]
    q = out.get("estimate_quality", {}).get("all")
    if q:
        extra += (f"\nestimated vs exact access sets ({q['instances']} instances): Jaccard {q['jaccard']:.2f}, "
                  f"recall {q['recall']:.2f}, precision {q['precision']:.2f}")  # fmt: skip
    return (
        f"{main}{extra}\n\nsimulator vs PostgreSQL (clock model from pg_buffercache): total error "
        f"{agr['total_err']:+.1%}, mean per-schedule error {agr['schedule_err_mean']:.1%} "
        f"(max {agr['schedule_err_max']:.1%}), {agr['query_exact']:.0%} of queries predicted exactly" + pgss
    )

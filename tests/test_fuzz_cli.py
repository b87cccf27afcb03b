"""Fuzz suite over `lab sfa`, `lab sched` (simulator side and one PostgreSQL case) and the core commands.

Every case feeds one bad input to the real CLI and checks how it fails: exit code 2, exactly one line
`error: ...` on stderr (for a malformed command line, one line that points at --help), no traceback, every file
that existed in the work folder byte-identical afterwards, and no temp file of an atomic write left behind.
The chess cases live in packages/transcendence/tests/test_fuzz_chess.py and the PostgreSQL cluster ones
beside the pg tests.

Cases run in this process through `lab_shared.cli.main` (see fuzz_harness.py); a few run as real
processes to show the in-process path behaves like the console script, and one as the user `nobody`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fuzz_harness (pytest runs with importlib mode)
from fuzz_harness import (  # noqa: E402
    check_failure,
    leftovers,
    run_lab,
    run_lab_subprocess,
    snapshot,
)

FileSpec = str | bytes | Callable[[Path], None]
TIMEOUT = int(os.environ.get("LAB_FUZZ_TIMEOUT", "60"))  # seconds a case may run before it counts as a hang


@dataclass
class Case:
    id: str
    argv: list[str]
    files: dict[str, FileSpec] = field(default_factory=dict)
    usage: bool = False  # a malformed command line: one line naming the command's --help, exit 2
    match: str | None = None  # a word the error line must contain
    env: dict[str, str] = field(default_factory=dict)  # "{ws}" stands for the work folder
    code: int = 2  # 0 for commands that must report a broken tool and carry on (lab doctor)
    frozen: tuple[str, ...] = ()  # folders made read-only (immutable: root ignores permission bits)


# -- inputs ------------------------------------------------------------------------------------------


def npz(**arrays) -> Callable[[Path], None]:
    """An .npz writer; `good` fills in a valid small image task for the arrays not given."""
    rng = np.random.default_rng(0)
    base = {
        "x_train": rng.integers(0, 255, (96, 8, 8), dtype=np.uint8),
        "y_train": np.arange(96) % 3,
        "x_test": rng.integers(0, 255, (24, 8, 8), dtype=np.uint8),
        "y_test": np.arange(24) % 3,
    }
    base.update(arrays)
    base = {k: v for k, v in base.items() if v is not None}

    def write(p: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, **base)
        p.write_bytes(buf.getvalue())

    return write


def truncated_npz(p: Path) -> None:
    npz()(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def image_folder(p: Path) -> None:
    """class folders holding files that are not images."""
    for c in ("a", "b"):
        (p / c).mkdir(parents=True)
        (p / c / "x.png").write_bytes(b"not a png at all")


def empty_folder(p: Path) -> None:
    p.mkdir(parents=True)


def script(body: str) -> Callable[[Path], None]:
    """An executable shell script (a fake Stockfish or PostgreSQL binary)."""

    def write(p: Path) -> None:
        p.write_text("#!/bin/sh\n" + body + "\n")
        p.chmod(0o755)

    return write


GARBAGE_OUT = script(r'printf "\377\376id name \200\n"')


def tensors(**arrays) -> Callable[[Path], None]:
    """A .safetensors writer (a checkpoint for `lab sfa merge`)."""

    def write(p: Path) -> None:
        from safetensors.numpy import save_file

        save_file({k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}, str(p))

    return write


MERGE_BASE = {
    "base.safetensors": tensors(w=np.ones((2, 2))),
    "ft.safetensors": tensors(w=np.full((2, 2), 2.0)),
}


SEQ_SWEEP = {"grid": [{"method": "seq"}]}


def point_file(text: str) -> Callable[[Path], None]:
    """points/<key>-s0.json of the first point of SEQ_SWEEP, holding `text`."""

    def write(p: Path) -> None:
        from lab_sfa.sweep import parse_spec

        p.mkdir(parents=True)
        (p / f"{parse_spec(SEQ_SWEEP)[1][0].key()}-s0.json").write_text(text)

    return write


def sched_run(state: str, model: bytes = b"junk") -> Callable[[Path], None]:
    """A `lab sched train` run folder (valid config.json) whose one checkpoint holds `state` and `model`."""

    def write(p: Path) -> None:
        from lab_learnsched.agents.config import TrainConfig
        from lab_shared.config import config_to_dict

        cfg = TrainConfig(workload="small", steps=64, num_envs=2, eval_every=0, ckpt_every=0, hidden=8)
        ck = p / "checkpoints" / "step-64"
        ck.mkdir(parents=True)
        (p / "config.json").write_text(json.dumps(config_to_dict(cfg)))
        (ck / "state.json").write_text(state)
        (ck / "model.safetensors").write_bytes(model)

    return write


def npz_task(entry: str = 'npz = "d.npz"', top: str = "", n: int = 1) -> str:
    tasks = "".join(f'[[tasks]]\nname = "t{i}"\n{entry}\n' for i in range(n))
    return f"image_size = 8\n{top}\n{tasks}"


GOOD_NPZ = {"d.npz": npz()}
CHEAP = [
    "--steps",
    "2",
    "--set",
    "pretrain_steps=0",
    "--set",
    "trainer.batch_size=8",
    "--no-curves",
]  # keep a surprise success short


def sfa_file(text: FileSpec, extra: dict | None = None, args: tuple = ()) -> dict:
    return {
        "files": {"seq.toml": text, **GOOD_NPZ, **(extra or {})},
        "argv": ["sfa", "run", "--sequence", "seq.toml", *CHEAP, *args],
    }


def sfa_case(cid: str, text: FileSpec, extra: dict | None = None, args: tuple = (), **kw) -> Case:
    d = sfa_file(text, extra, args)
    return Case(cid, d["argv"], d["files"], **kw)


TEXT_SEQ = 'kind = "text"\npreset = "tiny"\n'


def wl(
    workload: str = "", tables: str = "a = 64\nb = 32", templates: str | None = None, drift: str = ""
) -> str:
    """A workload TOML; each piece replaces the matching section of a valid small workload."""
    templates = (
        templates
        if templates is not None
        else '[templates.t1]\nweight = 1.0\nparts = [{table = "a", kind = "range", pages = [2, 6]}]\n'
        '[templates.t2]\nweight = 1.0\nparts = [{table = "b", kind = "index", pages = [2, 4]}]\n'
    )
    return f"[workload]\nqueries = 8\nbuffer_pages = 24\nqueue_size = 4\n{workload}\n[tables]\n{tables}\n{templates}\n{drift}"


def part(spec: str) -> str:
    return f"[templates.t1]\nweight = 1.0\nparts = [{{{spec}}}]\n"


def trace(queries: object, tables: object = None) -> str:
    return json.dumps(
        {
            "format": "learnsched-trace/1",
            "tables": tables if tables is not None else {"a": 10},
            "queries": queries,
        }
    )


def wl_cases(prefix: str, argv: Callable[[str], list[str]]) -> list[Case]:
    """The same bad workload files, fed to a command through `argv(path)`."""
    W = "w.toml"
    return [
        Case(f"{prefix}-wl-missing", argv("nope.toml"), match="neither a built-in"),
        Case(f"{prefix}-wl-non-utf8", argv(W), {W: b"\xff\xfe[workload]\n\x80\x81"}),
        Case(f"{prefix}-wl-garbage", argv(W), {W: "[tables\nx = "}),
        Case(f"{prefix}-wl-empty", argv(W), {W: ""}),
        Case(f"{prefix}-wl-binary-json", argv("w.json"), {"w.json": bytes(range(256))}),
        Case(f"{prefix}-wl-dir", argv("wdir.toml"), {"wdir.toml/x": "1"}),
        Case(f"{prefix}-wl-yaml", argv("w.yaml"), {"w.yaml": "tables: {}"}),
        Case(f"{prefix}-wl-json-list", argv("w.json"), {"w.json": "[1, 2]"}),
    ]


# -- the cases -----------------------------------------------------------------------------------------

CASES: list[Case] = [
    # ---- core: the `lab` command, doctor, demo
    Case("core-unknown-command", ["nope"], usage=True),
    Case("core-unknown-option", ["--nope"], usage=True),
    Case("doctor-extra-arg", ["doctor", "extra"], usage=True),
    Case("doctor-unknown-option", ["doctor", "--fast"], usage=True),
    Case(
        "doctor-stockfish-garbage", ["doctor"], {"sf": GARBAGE_OUT}, env={"LAB_STOCKFISH": "{ws}/sf"}, code=0
    ),
    Case(
        "doctor-stockfish-fails",
        ["doctor"],
        {"sf": script("exit 3")},
        env={"LAB_STOCKFISH": "{ws}/sf"},
        code=0,
    ),
    Case(
        "doctor-stockfish-is-dir", ["doctor"], {"sfdir/x": "1"}, env={"LAB_STOCKFISH": "{ws}/sfdir"}, code=0
    ),
    Case(
        "doctor-stockfish-not-exec",
        ["doctor"],
        {"sf": "not a program"},
        env={"LAB_STOCKFISH": "{ws}/sf"},
        code=0,
    ),
    Case(
        "doctor-pg-garbage",
        ["doctor"],
        {"pg/initdb": "", "pg/postgres": GARBAGE_OUT},
        env={"LAB_PG_BIN": "{ws}/pg"},
        code=0,
    ),
    Case("doctor-pg-no-postgres", ["doctor"], {"pg/initdb": ""}, env={"LAB_PG_BIN": "{ws}/pg"}, code=0),
    Case("doctor-pg-missing", ["doctor"], env={"LAB_PG_BIN": "{ws}/nothing"}, code=0),
    Case("config-show-unknown", ["config", "show", "nope"], match="no stock config"),
    Case("config-cp-unknown", ["config", "cp", "nope", "x.toml"], match="no stock config"),
    Case("config-cp-under-file", ["config", "cp", "sfa", "run", "f.txt/x.toml"], {"f.txt": "keep"}),
    Case("config-cp-exists", ["config", "cp", "sfa", "run", "f.txt"], {"f.txt": "keep"}, match="exists"),
    Case(
        "config-cp-read-only",
        ["config", "cp", "sfa", "run", "ro/x.toml"],
        frozen=("ro",),
        match="not permitted",
    ),
    Case("runs-show-unknown", ["runs", "show", "nope"], match="no run"),
    Case("runs-compare-one", ["runs", "compare", "runs/old/done-1"], match="two runs"),
    Case(
        "runs-ls-garbage",
        ["runs", "ls"],
        {
            "runs/sfa/x-1/config.json": "{",
            "runs/sfa/y-1/config.json": "[1]",
            "runs/sfa/z-1/config.json": '{"a": 1}',
            "runs/sfa/z-1/provenance.json": "[",
            "runs/sfa/z-1/results.json": "5",
        },
        code=0,
    ),
    Case(
        "runs-show-garbage-config",
        ["runs", "show", "runs/sfa/x-1"],
        {
            "runs/sfa/x-1/config.json": "{",
            "runs/sfa/y-1/config.json": "[1]",
            "runs/sfa/z-1/config.json": '{"a": 1}',
            "runs/sfa/z-1/provenance.json": "[",
            "runs/sfa/z-1/results.json": "5",
        },
        code=0,
    ),
    Case(
        "runs-show-garbage-provenance",
        ["runs", "show", "runs/sfa/z-1"],
        {
            "runs/sfa/x-1/config.json": "{",
            "runs/sfa/y-1/config.json": "[1]",
            "runs/sfa/z-1/config.json": '{"a": 1}',
            "runs/sfa/z-1/provenance.json": "[",
            "runs/sfa/z-1/results.json": "5",
        },
        code=0,
    ),
    Case(
        "runs-compare-garbage",
        ["runs", "compare", "runs/sfa/y-1", "runs/sfa/z-1"],
        {
            "runs/sfa/x-1/config.json": "{",
            "runs/sfa/y-1/config.json": "[1]",
            "runs/sfa/z-1/config.json": '{"a": 1}',
            "runs/sfa/z-1/provenance.json": "[",
            "runs/sfa/z-1/results.json": "5",
        },
        code=0,
    ),
    Case("demo-only-unknown", ["demo", "--only", "nope", "--out", "demo"], match="nope"),
    Case("demo-out-is-file", ["demo", "--only", "sched", "--out", "f.txt"], {"f.txt": "keep"}),
    Case("demo-out-under-file", ["demo", "--only", "sched", "--out", "f.txt/demo"], {"f.txt": "keep"}),
    # ---- config files and --set (through `sfa run` and `sched train`, which share lab_shared.config)
    Case("set-unknown-key", ["sfa", "run", "--set", "nope=1"], match="nope"),
    Case("set-unknown-nested", ["sfa", "run", "--set", "trainer.nope=1"], match="trainer.nope"),
    Case("set-subkey-of-scalar", ["sfa", "run", "--set", "seed.x=1"], match="seed"),
    Case("set-no-equals", ["sfa", "run", "--set", "trainer.lr"], match="key=value"),
    Case("set-empty-key", ["sfa", "run", "--set", "=3"], match="key=value"),
    Case("set-bad-float", ["sfa", "run", "--set", "trainer.lr=fast"], match="trainer.lr"),
    Case("set-bad-int", ["sfa", "run", "--set", "trainer.max_steps=1.5"], match="max_steps"),
    Case("set-bad-bool", ["sfa", "run", "--set", "curves=maybe"], match="curves"),
    Case("set-table-as-value", ["sfa", "run", "--set", "trainer=3"], match="trainer"),
    Case("set-lr-nan", ["sfa", "run", *CHEAP, "--set", "trainer.lr=nan"], match="lr"),
    Case("set-lr-inf", ["sfa", "run", *CHEAP, "--set", "trainer.lr=inf"], match="lr"),
    Case("set-lr-negative", ["sfa", "run", "--set", "trainer.lr=-1"], match="lr"),
    Case("set-batch-zero", ["sfa", "run", "--set", "trainer.batch_size=0"], match="batch_size"),
    Case("set-optimizer-unknown", ["sfa", "run", "--set", "trainer.optimizer=lbfgs"], match="optimizer"),
    Case("sched-set-unknown", ["sched", "train", "--set", "ppo.nope=1"], match="ppo.nope"),
    Case("sched-set-bad-type", ["sched", "train", "--set", "hidden=wide"], match="hidden"),
    Case("config-missing", ["sfa", "run", "--config", "none.toml"], match="not found"),
    Case("config-is-dir", ["sfa", "run", "--config", "cdir"], {"cdir/x": "1"}, match="not found"),
    Case("config-garbage-toml", ["sfa", "run", "--config", "c.toml"], {"c.toml": "[trainer\nlr=="}),
    Case("config-non-utf8", ["sfa", "run", "--config", "c.toml"], {"c.toml": b"seed = 1\n\xff\xfe"}),
    Case("config-garbage-json", ["sched", "train", "--config", "c.json"], {"c.json": '{"steps": '}),
    Case(
        "config-json-list", ["sched", "train", "--config", "c.json"], {"c.json": "[1, 2]"}, match="top level"
    ),
    Case(
        "config-unknown-key",
        ["sfa", "run", "--config", "c.toml"],
        {"c.toml": "[trainer]\nspeed = 2\n"},
        match="speed",
    ),
    Case(
        "config-wrong-type",
        ["sfa", "run", "--config", "c.toml"],
        {"c.toml": '[trainer]\nlr = "x"\n'},
        match="lr",
    ),
    Case(
        "config-table-wrong-type",
        ["sfa", "run", "--config", "c.toml"],
        {"c.toml": "trainer = 5\n"},
        match="trainer",
    ),
    Case(
        "config-list-wrong-item",
        ["sched", "bench", "--config", "c.toml"],
        {"c.toml": 'buffer_sweep = [1, "x"]\n'},
        match="buffer_sweep",
    ),
    # ---- sfa run: options
    Case("sfa-method-unknown", ["sfa", "run", "--method", "magic"], match="magic"),
    Case("sfa-sequence-unknown", ["sfa", "run", "--sequence", "nope"], match="nope"),
    Case("sfa-beta-above-1", ["sfa", "run", "--beta", "2"], match="beta"),
    Case("sfa-beta-nan", ["sfa", "run", "--beta", "nan"], match="beta"),
    Case("sfa-p-zero", ["sfa", "run", "--p", "0"], match="p "),
    Case("sfa-p-nan", ["sfa", "run", "--p", "nan"], match="p "),
    Case("sfa-lam-negative", ["sfa", "run", "--method", "l2", "--lam", "-1"], match="lam"),
    Case("sfa-lam-nan", ["sfa", "run", "--method", "l2", "--lam", "nan", *CHEAP], match="lam"),
    Case("sfa-alpha-nan", ["sfa", "run", "--method", "wise_ft", "--alpha", "nan"], match="alpha"),
    Case(
        "sfa-buffer-negative",
        ["sfa", "run", "--method", "replay", "--buffer-size", "-5"],
        match="buffer_size",
    ),
    Case(
        "sfa-buffer-nan",
        ["sfa", "run", "--method", "replay", "--buffer-size", "nan", *CHEAP],
        match="buffer_size",
    ),
    Case("sfa-steps-zero", ["sfa", "run", "--steps", "0"], match="max_steps"),
    Case("sfa-steps-negative", ["sfa", "run", "--steps", "-3"], match="max_steps"),
    Case("sfa-steps-not-int", ["sfa", "run", "--steps", "ten"], usage=True),
    Case("sfa-lr-zero", ["sfa", "run", "--lr", "0"], match="lr"),
    Case("sfa-lr-nan", ["sfa", "run", *CHEAP, "--lr", "nan"], match="lr"),
    Case("sfa-width-zero", ["sfa", "run", *CHEAP, "--width", "0"], match="width"),
    Case("sfa-width-negative", ["sfa", "run", *CHEAP, "--width", "-4"], match="width"),
    Case("sfa-model-unknown", ["sfa", "run", *CHEAP, "--model", "transformer"], match="transformer"),
    Case("sfa-head-unknown", ["sfa", "run", *CHEAP, "--head", "many"], match="head"),
    Case("sfa-seed-negative", ["sfa", "run", *CHEAP, "--seed", "-1"], match="seed"),
    Case("sfa-pretrain-negative", ["sfa", "run", "--set", "pretrain_steps=-1"], match="pretrain_steps"),
    Case("sfa-n-train-negative", ["sfa", "run", *CHEAP, "--set", "sequence.n_train=-5"], match="n_train"),
    Case("sfa-n-test-negative", ["sfa", "run", *CHEAP, "--set", "sequence.n_test=-1"], match="n_test"),
    Case("sfa-n-val-negative", ["sfa", "run", *CHEAP, "--set", "sequence.n_val=-1"], match="n_val"),
    Case(
        "sfa-eval-batch-zero",
        ["sfa", "run", *CHEAP, "--set", "sequence.eval_batch_size=0"],
        match="eval_batch_size",
    ),
    Case("sfa-norm-unknown", ["sfa", "run", *CHEAP, "--set", "sequence.norm=ln"], match="norm"),
    Case(
        "sfa-curve-points-negative",
        ["sfa", "run", *CHEAP, "--curves", "--set", "curve_points=-1"],
        match="curve_points",
    ),
    Case("sfa-order-negative", ["sfa", "run", *CHEAP, "--set", "sequence.order=-1"], match="order"),
    Case(
        "sfa-data-seed-negative", ["sfa", "run", *CHEAP, "--set", "sequence.data_seed=-1"], match="data_seed"
    ),
    Case(
        "sfa-curve-samples-negative",
        ["sfa", "run", *CHEAP, "--set", "curve_samples=-1"],
        match="curve_samples",
    ),
    Case("sfa-pretrain-lr-nan", ["sfa", "run", *CHEAP, "--set", "pretrain_lr=nan"], match="pretrain_lr"),
    Case(
        "sfa-ewc-gamma-inf",
        ["sfa", "run", *CHEAP, "--method", "ewc", "--set", "method.ewc_gamma=inf"],
        match="ewc_gamma",
    ),
    Case("sfa-threads-negative", ["sfa", "run", *CHEAP, "--set", "threads=-2"], match="threads"),
    Case("sfa-buffers-unknown", ["sfa", "run", "--set", "method.buffers=copy"], match="buffers"),
    Case(
        "sfa-fisher-zero",
        ["sfa", "run", "--method", "ewc", "--set", "method.fisher_samples=0"],
        match="fisher",
    ),
    Case(
        "sfa-runs-root-is-file",
        ["sfa", "run", *CHEAP],
        {"runsfile": "keep"},
        env={"LAB_RUNS": "{ws}/runsfile"},
    ),
    Case(
        "sched-runs-root-under-file",
        ["sched", "bench", "-w", "small"],
        {"runsfile": "keep"},
        env={"LAB_RUNS": "{ws}/runsfile/runs"},
    ),
    # ---- sfa run: image task files (TOML + .npz / folders / built-ins)
    Case("sfa-file-missing", ["sfa", "run", "--sequence", "none.toml"], match="not found"),
    sfa_case("sfa-file-garbage", "[[tasks]\nname ="),
    sfa_case("sfa-file-non-utf8", b"image_size = 8\n\xff\xfe\xfd"),
    sfa_case("sfa-file-empty", "", match="tasks"),
    sfa_case("sfa-file-tasks-not-list", "tasks = 3\n", match="tasks"),
    sfa_case("sfa-file-task-not-table", "tasks = [1, 2]\n", match="task 1"),
    sfa_case("sfa-file-unknown-top-key", npz_task(top="imagesize = 8"), match="imagesize"),
    sfa_case(
        "sfa-file-unknown-task-key", npz_task(entry='npz = "d.npz"\ntransfrom = "rot90"'), match="transfrom"
    ),
    sfa_case(
        "sfa-file-image-size-text",
        npz_task(top='image_size = "big"').replace("image_size = 8\n", ""),
        match="image_size",
    ),
    sfa_case(
        "sfa-file-image-size-negative",
        npz_task().replace("image_size = 8", "image_size = -8"),
        match="image_size",
    ),
    sfa_case("sfa-file-channels-2", npz_task(top="channels = 2"), match="channels"),
    sfa_case("sfa-file-channels-text", npz_task(top='channels = "rgb"'), match="channels"),
    sfa_case("sfa-file-head-number", npz_task(top="head = 5"), match="head"),
    sfa_case("sfa-file-no-source", npz_task(entry=""), match="exactly one"),
    sfa_case(
        "sfa-file-two-sources", npz_task(entry='npz = "d.npz"\nbuiltin = "fmnist"'), match="exactly one"
    ),
    sfa_case("sfa-file-npz-path-number", npz_task(entry="npz = 5"), match="npz"),
    sfa_case("sfa-file-npz-missing", npz_task(entry='npz = "gone.npz"'), match="not found"),
    sfa_case("sfa-file-npz-is-dir", npz_task(entry='npz = "ddir"'), {"ddir/x": "1"}),
    sfa_case("sfa-file-npz-garbage", npz_task(entry='npz = "g.npz"'), {"g.npz": b"PK\x03\x04garbage"}),
    sfa_case("sfa-file-npz-truncated", npz_task(entry='npz = "t.npz"'), {"t.npz": truncated_npz}),
    sfa_case("sfa-file-npz-empty-file", npz_task(entry='npz = "e.npz"'), {"e.npz": b""}),
    sfa_case(
        "sfa-file-npz-missing-array",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(y_test=None)},
        match="y_test",
    ),
    sfa_case(
        "sfa-file-npz-2d-images",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(x_train=np.zeros((96, 64)))},
        match="shape",
    ),
    sfa_case(
        "sfa-file-npz-float-labels",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(y_train=np.full(96, 0.5))},
        match="labels",
    ),
    sfa_case(
        "sfa-file-npz-negative-labels",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(y_train=-np.ones(96, dtype=int))},
        match="labels",
    ),
    sfa_case(
        "sfa-file-npz-label-count",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(y_train=np.zeros(5, dtype=int))},
        match="labels",
    ),
    sfa_case(
        "sfa-file-npz-string-images",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(x_train=np.full((96, 8, 8), "a"))},
    ),
    sfa_case(
        "sfa-file-npz-nan-images",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(x_train=np.full((96, 8, 8), np.nan))},
        match="finite",
    ),
    sfa_case(
        "sfa-file-npz-no-examples",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(x_train=np.zeros((0, 8, 8)), y_train=np.zeros(0, dtype=int))},
    ),
    sfa_case(
        "sfa-file-npz-size-mismatch",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(x_test=np.zeros((24, 9, 9)))},
        match="size",
    ),
    sfa_case(
        "sfa-file-npz-object-array",
        npz_task(entry='npz = "m.npz"'),
        {"m.npz": npz(x_train=np.array([None] * 96, dtype=object))},
    ),
    sfa_case("sfa-file-folder-missing", npz_task(entry='folder = "nodir"'), match="not found"),
    sfa_case(
        "sfa-file-folder-empty", npz_task(entry='folder = "edir"'), {"edir": empty_folder}, match="subfolder"
    ),
    sfa_case(
        "sfa-file-folder-not-images",
        npz_task(entry='folder = "idir"'),
        {"idir": image_folder},
        match="cannot read image",
    ),
    sfa_case(
        "sfa-file-test-fraction-text",
        npz_task(entry='folder = "idir"\ntest_fraction = "half"'),
        {"idir": image_folder},
        match="test_fraction",
    ),
    sfa_case("sfa-file-builtin-unknown", npz_task(entry='builtin = "cifar"'), match="cifar"),
    sfa_case("sfa-file-transform-unknown", npz_task(entry='npz = "d.npz"\ntransform = "rot45"'), match="45"),
    sfa_case("sfa-file-pretrain-not-table", npz_task(top='pretrain = "fmnist"'), match="pretrain"),
    # ---- sfa run: text task files (kind = "text")
    sfa_case("sfa-text-unknown-key", TEXT_SEQ + 'colour = 1\n[[tasks]]\nname = "math"\n', match="colour"),
    sfa_case("sfa-text-no-tasks", TEXT_SEQ, match="tasks"),
    sfa_case("sfa-text-task-no-name", TEXT_SEQ + '[[tasks]]\npaths = ["a.txt"]\n', match="name"),
    sfa_case("sfa-text-unknown-builtin", TEXT_SEQ + '[[tasks]]\nname = "poetry"\n', match="poetry"),
    sfa_case(
        "sfa-text-duplicate",
        TEXT_SEQ + '[[tasks]]\nname = "math"\n[[tasks]]\nname = "math"\n',
        match="unique",
    ),
    sfa_case("sfa-text-paths-number", TEXT_SEQ + '[[tasks]]\nname = "mine"\npaths = 5\n', match="paths"),
    sfa_case("sfa-text-paths-missing", TEXT_SEQ + '[[tasks]]\nname = "mine"\npaths = ["gone.txt"]\n'),
    sfa_case(
        "sfa-text-binary-file",
        TEXT_SEQ + '[[tasks]]\nname = "mine"\npaths = ["b.txt"]\n',
        {"b.txt": bytes(range(256)) * 4},
    ),
    sfa_case(
        "sfa-text-preset-unknown", 'kind = "text"\npreset = "huge"\n[[tasks]]\nname = "math"\n', match="huge"
    ),
    sfa_case(
        "sfa-text-pretrain-steps-text",
        TEXT_SEQ + 'pretrain_steps = "many"\n[[tasks]]\nname = "math"\n',
        match="pretrain_steps",
    ),
    sfa_case(
        "sfa-text-n-test-negative", TEXT_SEQ + 'n_test = -4\n[[tasks]]\nname = "math"\n', match="n_test"
    ),
    sfa_case("sfa-text-tasks-not-tables", TEXT_SEQ + 'tasks = ["math"]\n', match="name"),
    # ---- sfa sweep / table
    Case("sweep-no-file", ["sfa", "sweep"], match="sweep file"),
    Case("sweep-file-missing", ["sfa", "sweep", "none.toml"], match="not found"),
    Case("sweep-garbage", ["sfa", "sweep", "s.toml"], {"s.toml": "seeds = [0,"}),
    Case("sweep-non-utf8", ["sfa", "sweep", "s.toml"], {"s.toml": b"seeds = [0]\n\xff"}),
    Case("sweep-json-list", ["sfa", "sweep", "s.json"], {"s.json": "[1]"}, match="sweep file"),
    Case(
        "sweep-unknown-key",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": 'sedes = [0]\n[[grid]]\nmethod = "seq"\n'},
        match="sedes",
    ),
    Case(
        "sweep-seeds-text",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": 'seeds = "0"\n[[grid]]\nmethod = "seq"\n'},
        match="seeds",
    ),
    Case(
        "sweep-seeds-empty",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": 'seeds = []\n[[grid]]\nmethod = "seq"\n'},
        match="seeds",
    ),
    Case("sweep-no-grid", ["sfa", "sweep", "s.toml"], {"s.toml": "seeds = [0]\n"}, match="grid"),
    Case("sweep-grid-not-tables", ["sfa", "sweep", "s.toml"], {"s.toml": "grid = [1, 2]\n"}, match="grid"),
    Case(
        "sweep-grid-no-method",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": '[[grid]]\n"method.beta" = 0.1\n'},
        match="method",
    ),
    Case(
        "sweep-grid-unknown-method",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": '[[grid]]\nmethod = "magic"\n'},
        match="magic",
    ),
    Case(
        "sweep-grid-unknown-key",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": '[[grid]]\nmethod = "sfa"\n"method.bta" = [0.1]\n'},
        match="method.bta",
    ),
    Case(
        "sweep-grid-bad-value",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": '[[grid]]\nmethod = "sfa"\n"method.beta" = [0.1, 7]\n'},
        match="beta",
    ),
    Case(
        "sweep-base-not-table",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": 'base = 5\n[[grid]]\nmethod = "seq"\n'},
        match="base",
    ),
    Case(
        "sweep-select-unknown",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": 'select = "speed"\n[[grid]]\nmethod = "seq"\n'},
        match="select",
    ),
    Case(
        "sweep-only-nothing",
        ["sfa", "sweep", "s.toml", "--only", "ewc"],
        {"s.toml": '[[grid]]\nmethod = "seq"\n'},
        match="ewc",
    ),
    Case(
        "sweep-bad-extra-set",
        ["sfa", "sweep", "s.toml", "--set", "trainer.lr=x"],
        {"s.toml": '[[grid]]\nmethod = "seq"\n'},
        match="trainer.lr",
    ),
    Case("sweep-resume-missing", ["sfa", "sweep", "--resume", "gone"], match="not found"),
    Case(
        "sweep-resume-no-spec", ["sfa", "sweep", "--resume", "sw"], {"sw/keep.txt": "x"}, match="sweep.json"
    ),
    Case(
        "sweep-resume-garbage-spec",
        ["sfa", "sweep", "--resume", "sw"],
        {"sw/sweep.json": '{"grid": '},
        match="sweep.json",
    ),
    Case(
        "sweep-resume-list-spec",
        ["sfa", "sweep", "--resume", "sw"],
        {"sw/sweep.json": "[1, 2]"},
        match="sweep",
    ),
    Case("table-missing", ["sfa", "table", "gone"], match="not found"),
    Case("table-garbage-spec", ["sfa", "table", "sw"], {"sw/sweep.json": b"\x00\x01"}, match="sweep.json"),
    Case(
        "table-garbage-point",
        ["sfa", "table", "sw"],
        {"sw/sweep.json": json.dumps(SEQ_SWEEP), "sw/points": point_file("{")},
        match="json",
    ),
    Case(
        "table-point-not-object",
        ["sfa", "table", "sw"],
        {"sw/sweep.json": json.dumps(SEQ_SWEEP), "sw/points": point_file("[1, 2]")},
    ),
    Case(
        "table-point-no-acc",
        ["sfa", "table", "sw"],
        {"sw/sweep.json": json.dumps(SEQ_SWEEP), "sw/points": point_file('{"val_acc": 0.5}')},
    ),
    Case(
        "table-no-points",
        ["sfa", "table", "sw"],
        {"sw/sweep.json": json.dumps(SEQ_SWEEP)},
        match="no finished",
    ),
    # ---- sfa merge
    Case(
        "merge-unknown-method",
        ["sfa", "merge", "soup", "--base", "b", "--models", "m", "--out", "o"],
        usage=True,
    ),
    Case(
        "merge-base-missing",
        [
            "sfa",
            "merge",
            "ties",
            "--base",
            "gone.safetensors",
            "--models",
            "m.safetensors",
            "--out",
            "o.safetensors",
        ],
    ),
    Case(
        "merge-base-garbage",
        [
            "sfa",
            "merge",
            "ties",
            "--base",
            "b.safetensors",
            "--models",
            "b.safetensors",
            "--out",
            "o.safetensors",
        ],
        {"b.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage"},
    ),
    Case(
        "merge-base-empty-dir",
        ["sfa", "merge", "task_arithmetic", "--base", "bdir", "--models", "bdir", "--out", "o"],
        {"bdir": empty_folder},
    ),
    Case(
        "merge-k-zero",
        ["sfa", "merge", "ties", "--base", "b", "--models", "m", "--out", "o", "--k", "0"],
        match="--k",
    ),
    Case(
        "merge-k-nan",
        ["sfa", "merge", "ties", "--base", "b", "--models", "m", "--out", "o", "--k", "nan"],
        match="--k",
    ),
    Case(
        "merge-alpha-above-1",
        ["sfa", "merge", "wise_ft", "--base", "b", "--models", "m", "--out", "o", "--alpha", "1.5"],
        match="alpha",
    ),
    Case(
        "merge-lambda-nan",
        ["sfa", "merge", "task_arithmetic", "--base", "b", "--models", "m", "--out", "o", "--lambda", "nan"],
        match="lambda",
    ),
    Case(
        "merge-wise-two-models",
        ["sfa", "merge", "wise_ft", "--base", "b", "--models", "m", "n", "--out", "o"],
        match="wise_ft",
    ),
    Case(
        "merge-no-models",
        ["sfa", "merge", "ties", "--base", "b", "--models", ",", "--out", "o"],
        match="models",
    ),
    Case(
        "merge-stray-option",
        ["sfa", "merge", "ties", "--base", "b", "--models", "m", "--out", "o", "--fast"],
        usage=True,
    ),
    Case(
        "merge-index-map-number",
        ["sfa", "merge", "task_arithmetic", "--base", "hf", "--models", "ft.safetensors", "--out", "o"],
        {**MERGE_BASE, "hf/model.safetensors.index.json": '{"weight_map": 5}'},
        match="shard index",
    ),
    Case(
        "merge-index-map-number-ties",
        ["sfa", "merge", "ties", "--base", "hf", "--models", "ft.safetensors", "--out", "o"],
        {**MERGE_BASE, "hf/model.safetensors.index.json": '{"weight_map": 5}'},
        match="shard index",
    ),
    Case(
        "merge-index-shard-number",
        ["sfa", "merge", "task_arithmetic", "--base", "hf", "--models", "ft.safetensors", "--out", "o"],
        {**MERGE_BASE, "hf/model.safetensors.index.json": '{"weight_map": {"w": 5}}'},
        match="shard index",
    ),
    Case(
        "merge-index-shard-number-ties",
        ["sfa", "merge", "ties", "--base", "hf", "--models", "ft.safetensors", "--out", "o"],
        {**MERGE_BASE, "hf/model.safetensors.index.json": '{"weight_map": {"w": 5}}'},
        match="shard index",
    ),
    Case(
        "merge-index-garbage",
        ["sfa", "merge", "ties", "--base", "hf", "--models", "ft.safetensors", "--out", "o"],
        {**MERGE_BASE, "hf/model.safetensors.index.json": "{"},
        match="shard index",
    ),
    Case(
        "merge-index-shard-missing",
        ["sfa", "merge", "ties", "--base", "hf", "--models", "ft.safetensors", "--out", "o"],
        {**MERGE_BASE, "hf/model.safetensors.index.json": '{"weight_map": {"w": "gone.safetensors"}}'},
    ),
    Case(
        "merge-pickle-bin",
        ["sfa", "merge", "ties", "--base", "hf", "--models", "ft.safetensors", "--out", "o"],
        {**MERGE_BASE, "hf/pytorch_model.bin": b"garbage"},
        match="cannot read",
    ),
    Case(
        "merge-shape-mismatch",
        [
            "sfa",
            "merge",
            "ties",
            "--base",
            "base.safetensors",
            "--models",
            "m.safetensors",
            "--out",
            "o.safetensors",
        ],
        {**MERGE_BASE, "m.safetensors": tensors(w=np.ones(3))},
        match="shape",
    ),
    Case(
        "merge-extra-tensor",
        [
            "sfa",
            "merge",
            "ties",
            "--base",
            "base.safetensors",
            "--models",
            "m.safetensors",
            "--out",
            "o.safetensors",
        ],
        {**MERGE_BASE, "m.safetensors": tensors(v=np.ones((2, 2)))},
        match="missing",
    ),
    Case(
        "merge-out-under-file",
        [
            "sfa",
            "merge",
            "task_arithmetic",
            "--base",
            "base.safetensors",
            "--models",
            "ft.safetensors",
            "--out",
            "f.txt/o.safetensors",
        ],
        {**MERGE_BASE, "f.txt": "keep"},
    ),
    Case(
        "merge-out-read-only",
        [
            "sfa",
            "merge",
            "wise_ft",
            "--base",
            "base.safetensors",
            "--models",
            "ft.safetensors",
            "--out",
            "ro/o.safetensors",
        ],
        MERGE_BASE,
        frozen=("ro",),
        match="not permitted",
    ),
    Case(
        "merge-lambda-inf-real",
        [
            "sfa",
            "merge",
            "ties",
            "--base",
            "base.safetensors",
            "--models",
            "ft.safetensors",
            "--out",
            "o.safetensors",
            "--lambda",
            "inf",
        ],
        MERGE_BASE,
        match="finite",
    ),
    Case(
        "merge-out-exists",
        ["sfa", "merge", "ties", "--base", "b", "--models", "m", "--out", "o.safetensors"],
        {"o.safetensors": "old"},
        match="exists",
    ),
    # ---- sched train
    Case("train-agent-unknown", ["sched", "train", "--agent", "a2c"], match="a2c"),
    Case("train-steps-zero", ["sched", "train", "--steps", "0"], match="steps"),
    Case("train-steps-negative", ["sched", "train", "--steps", "-5"], match="steps"),
    Case(
        "train-buffer-negative",
        ["sched", "train", "-w", "small", "--steps", "64", "--buffer-pages", "-5"],
        match="buffer",
    ),
    Case(
        "train-queue-negative",
        ["sched", "train", "-w", "small", "--steps", "64", "--queue-size", "-1"],
        match="queue",
    ),
    Case(
        "train-seed-negative",
        ["sched", "train", "-w", "small", "--steps", "64", "--seed", "-1"],
        match="seed",
    ),
    Case("train-num-envs-zero", ["sched", "train", "--set", "num_envs=0"], match="num_envs"),
    Case("train-lr-nan", ["sched", "train", "-w", "small", "--steps", "64", "--set", "lr=nan"], match="lr"),
    Case(
        "train-hidden-zero",
        ["sched", "train", "-w", "small", "--steps", "64", "--set", "hidden=0"],
        match="hidden",
    ),
    Case(
        "train-bins-zero", ["sched", "train", "-w", "small", "--steps", "64", "--set", "bins=0"], match="bins"
    ),
    Case(
        "train-policy-unknown",
        ["sched", "train", "-w", "small", "--steps", "64", "--set", "policy=mru"],
        match="mru",
    ),
    Case(
        "train-eval-every-negative",
        ["sched", "train", "-w", "small", "--steps", "64", "--set", "eval_every=-1"],
        match="eval_every",
    ),
    Case(
        "train-threads-negative",
        ["sched", "train", "-w", "small", "--steps", "64", "--set", "threads=-3"],
        match="threads",
    ),
    Case(
        "train-ppo-epochs-zero",
        ["sched", "train", "-w", "small", "--steps", "64", "--set", "ppo.epochs=0"],
        match="epochs",
    ),
    Case(
        "train-ppo-gamma-nan",
        ["sched", "train", "-w", "small", "--steps", "64", "--set", "ppo.gamma=nan"],
        match="gamma",
    ),
    Case(
        "train-dqn-batch-zero",
        ["sched", "train", "--agent", "dqn", "-w", "small", "--steps", "64", "--set", "dqn.batch_size=0"],
        match="batch_size",
    ),
    Case("train-resume-missing", ["sched", "train", "--resume", "gone"], match="nothing to resume"),
    Case(
        "train-resume-not-run",
        ["sched", "train", "--resume", "empty"],
        {"empty": empty_folder},
        match="run directory",
    ),
    Case(
        "train-resume-garbage-config",
        ["sched", "train", "--resume", "r"],
        {"r/config.json": '{"agent": '},
        match="config",
    ),
    Case(
        "train-resume-list-config",
        ["sched", "train", "--resume", "r"],
        {"r/config.json": "[1]"},
        match="config",
    ),
    *wl_cases("train", lambda p: ["sched", "train", "-w", p, "--steps", "64"]),
    Case(
        "train-resume-garbage-state",
        ["sched", "train", "--resume", "r"],
        {"r": sched_run("{")},
        match="state.json",
    ),
    Case(
        "train-resume-ckpt-garbage",
        ["sched", "train", "--resume", "r/checkpoints/step-64"],
        {"r": sched_run("{")},
        match="state.json",
    ),
    Case("train-resume-state-list", ["sched", "train", "--resume", "r"], {"r": sched_run("[1, 2]")}),
    Case(
        "bench-agent-garbage-state",
        ["sched", "bench", "-w", "small", "--agent", "r", "--seeds", "1"],
        {"r": sched_run("{")},
        match="state.json",
    ),
    Case(
        "bench-agent-no-meta",
        ["sched", "bench", "-w", "small", "--agent", "r", "--seeds", "1"],
        {"r": sched_run("{}")},
        match="state.json",
    ),
    Case(
        "sim-agent-state-list",
        ["sched", "simulate", "-w", "small", "--scheduler", "agent:r"],
        {"r": sched_run("[]")},
    ),
    Case(
        "sim-agent-bad-meta",
        ["sched", "simulate", "-w", "small", "--scheduler", "agent:r"],
        {"r": sched_run('{"agent": {"kind": "ppo", "hidden": -1}}')},
    ),
    # ---- sched bench
    Case(
        "bench-policy-unknown", ["sched", "bench", "-w", "small", "--policies", "fifo,magic"], match="magic"
    ),
    Case("bench-workload-unknown", ["sched", "bench", "-w", "small,nope"], match="nope"),
    Case("bench-seeds-zero", ["sched", "bench", "-w", "small", "--seeds", "0"], match="seeds"),
    Case("bench-buffer-sweep-text", ["sched", "bench", "-w", "small", "--buffer-sweep", "a,b"], match="a,b"),
    Case(
        "bench-buffer-sweep-negative",
        ["sched", "bench", "-w", "small", "--buffer-sweep", "-5"],
        match="buffer",
    ),
    Case("bench-queue-sweep-zero", ["sched", "bench", "-w", "small", "--queue-sweep", "0"], match="queue"),
    Case("bench-backend-unknown", ["sched", "bench", "--backend", "mysql"], match="mysql"),
    Case("bench-agent-missing", ["sched", "bench", "-w", "small", "--agent", "gone"], match="gone"),
    Case(
        "bench-agent-garbage",
        ["sched", "bench", "-w", "small", "--agent", "ag"],
        {"ag/config.json": "{}", "ag/model.safetensors": b"junk"},
    ),
    Case(
        "bench-exact-size-huge",
        ["sched", "bench", "-w", "small", "--set", "exact_size=40"],
        match="exact_size",
    ),
    Case(
        "bench-exact-batches-negative",
        ["sched", "bench", "-w", "small", "--set", "exact_batches=-1"],
        match="exact_batches",
    ),
    Case(
        "bench-sweep-seeds-zero",
        ["sched", "bench", "-w", "small", "--set", "sweep_seeds=0"],
        match="sweep_seeds",
    ),
    Case("bench-replacement-unknown", ["sched", "bench", "-w", "small", "--set", "policy=mru"], match="mru"),
    *wl_cases("bench", lambda p: ["sched", "bench", "-w", p, "--seeds", "1"])[:3],
    # ---- sched simulate
    Case("sim-scheduler-unknown", ["sched", "simulate", "--scheduler", "magic"], match="magic"),
    Case("sim-lookahead-text", ["sched", "simulate", "--scheduler", "lookahead:x"], match="lookahead"),
    Case(
        "sim-lookahead-zero",
        ["sched", "simulate", "-w", "small", "--scheduler", "lookahead:0"],
        match="lookahead",
    ),
    Case(
        "sim-lookahead-negative",
        ["sched", "simulate", "-w", "small", "--scheduler", "lookahead:-2"],
        match="lookahead",
    ),
    Case(
        "sim-planner-text", ["sched", "simulate", "-w", "small", "--scheduler", "planner:x"], match="planner"
    ),
    Case(
        "sim-planner-zero", ["sched", "simulate", "-w", "small", "--scheduler", "planner:0"], match="planner"
    ),
    Case(
        "sim-planner-depth-negative",
        ["sched", "simulate", "-w", "small", "--scheduler", "planner:2:-3"],
        match="planner",
    ),
    Case(
        "sim-planner-too-many-args",
        ["sched", "simulate", "-w", "small", "--scheduler", "planner:1:1:1:1"],
        match="planner",
    ),
    Case(
        "bench-planner-bad",
        ["sched", "bench", "-w", "small", "--policies", "fifo,planner:1:1:1:1"],
        match="planner",
    ),
    Case(
        "sim-optimal-zero", ["sched", "simulate", "-w", "small", "--scheduler", "optimal:0"], match="optimal"
    ),
    Case("sim-agent-no-path", ["sched", "simulate", "--scheduler", "agent:"], match="checkpoint"),
    Case(
        "sim-agent-missing", ["sched", "simulate", "-w", "small", "--scheduler", "agent:gone"], match="gone"
    ),
    Case(
        "sim-agent-garbage",
        ["sched", "simulate", "-w", "small", "--scheduler", "agent:ag"],
        {"ag/model.safetensors": b"\x00" * 16, "ag/state.json": "{"},
    ),
    Case(
        "sim-replacement-unknown", ["sched", "simulate", "-w", "small", "--replacement", "mru"], match="mru"
    ),
    Case("sim-buffer-negative", ["sched", "simulate", "-w", "small", "--buffer-pages", "-5"], match="buffer"),
    Case(
        "sim-buffer-all-data", ["sched", "simulate", "-w", "small", "--buffer-pages", "500"], match="buffer"
    ),
    Case("sim-queue-negative", ["sched", "simulate", "-w", "small", "--queue-size", "-1"], match="queue"),
    Case("sim-queue-huge", ["sched", "simulate", "-w", "small", "--queue-size", "1000000000"], match="queue"),
    Case("sim-seed-negative", ["sched", "simulate", "-w", "small", "--seed", "-1"], match="seed"),
    Case("sim-seed-not-int", ["sched", "simulate", "--seed", "abc"], usage=True),
    Case(
        "sim-trace-out-under-file",
        ["sched", "simulate", "-w", "small", "--trace-out", "f.txt/t.json"],
        {"f.txt": "keep"},
    ),
    Case(
        "sim-trace-out-is-dir",
        ["sched", "simulate", "-w", "small", "--trace-out", "tdir"],
        {"tdir/keep": "x"},
    ),
    *wl_cases("sim", lambda p: ["sched", "simulate", "-w", p]),
    Case(
        "ro-sim-trace-out",
        ["sched", "simulate", "-w", "small", "--trace-out", "ro/t.json"],
        frozen=("ro",),
        match="not permitted",
    ),
    Case(
        "ro-wl-export",
        ["sched", "workload", "small", "--export-trace", "ro/t.json"],
        frozen=("ro",),
        match="not permitted",
    ),
    Case(
        "ro-bench-runs",
        ["sched", "bench", "-w", "small"],
        env={"LAB_RUNS": "{ws}/ro/runs"},
        frozen=("ro",),
        match="not permitted",
    ),
    Case(
        "ro-train-runs",
        ["sched", "train", "-w", "small", "--steps", "64"],
        env={"LAB_RUNS": "{ws}/ro"},
        frozen=("ro",),
        match="not permitted",
    ),
    Case(
        "ro-sfa-runs",
        ["sfa", "run", *CHEAP],
        env={"LAB_RUNS": "{ws}/ro/runs"},
        frozen=("ro",),
        match="not permitted",
    ),
    Case(
        "ro-sweep-runs",
        ["sfa", "sweep", "s.toml"],
        {"s.toml": '[[grid]]\nmethod = "seq"\n'},
        env={"LAB_RUNS": "{ws}/ro"},
        frozen=("ro",),
        match="not permitted",
    ),
    Case(
        "ro-demo-out", ["demo", "--only", "sched", "--out", "ro/demo"], frozen=("ro",), match="not permitted"
    ),
    # ---- sched workload: the file schema
    Case("wl-episodes-zero", ["sched", "workload", "small", "--episodes", "0"], match="episodes"),
    Case("wl-episodes-negative", ["sched", "workload", "small", "--episodes", "-3"], match="episodes"),
    Case(
        "wl-export-under-file",
        ["sched", "workload", "small", "--export-trace", "f.txt/t.json"],
        {"f.txt": "keep"},
    ),
    *wl_cases("wl", lambda p: ["sched", "workload", p]),
    Case("wl-family-unknown", ["sched", "workload", "family:nope:1"], match="nope"),
    Case("wl-family-seed-negative", ["sched", "workload", "family:hotset:-1"], match="seed"),
    Case("wl-family-seed-text", ["sched", "workload", "family:hotset:x"], match="seed"),
    Case("wl-family-empty", ["sched", "workload", "family:"], match="family"),
    Case("wl-gen-no-family", ["sched", "workload", "gen", "--out", "x.toml"], match="--family"),
    Case(
        "wl-gen-seed-negative",
        ["sched", "workload", "gen", "--family", "hotset", "--seed", "-3", "--out", "x.toml"],
        match="seed",
    ),
    Case(
        "wl-gen-out-under-file",
        ["sched", "workload", "gen", "--family", "hotset", "--seed", "1", "--out", "f.txt/x.toml"],
        {"f.txt": "keep"},
    ),
    Case(
        "bench-family-unknown",
        ["sched", "bench", "-w", "family:hotset:1,family:nope:2", "--seeds", "1"],
        match="nope",
    ),
    Case(
        "setnet-family-unknown",
        ["sched", "train", "--agent", "setnet", "--steps", "64", "--set", "families=nope"],
        match="nope",
    ),
    Case(
        "setnet-queue-zero",
        ["sched", "train", "--agent", "setnet", "--steps", "64", "--set", "max_queue=0"],
        match="max_queue",
    ),
    Case(
        "setnet-lr-nan",
        ["sched", "train", "--agent", "setnet", "--steps", "64", "--set", "lr=nan"],
        match="lr",
    ),
    Case(
        "setnet-heads-zero",
        ["sched", "train", "--agent", "setnet", "--steps", "64", "--set", "heads=0"],
        match="heads",
    ),
    Case(
        "wl-section-not-table",
        ["sched", "workload", "w.json"],
        {"w.json": json.dumps({"workload": 5, "tables": {"a": 5}})},
        match="workload",
    ),
    Case(
        "wl-unknown-top-key",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl() + "\n[extra]\nx = 1\n"},
        match="extra",
    ),
    Case(
        "wl-unknown-workload-key",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl("colour = 1")},
        match="colour",
    ),
    Case("wl-no-tables", ["sched", "workload", "w.toml"], {"w.toml": wl(tables="")}, match="tables"),
    Case(
        "wl-negative-pages",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(tables="a = -64\nb = 32")},
        match="page count",
    ),
    Case(
        "wl-float-pages",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(tables="a = 6.5\nb = 32")},
        match="page count",
    ),
    Case(
        "wl-huge-pages",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(tables="a = 1000000000000\nb = 32")},
        match="pages",
    ),
    Case(
        "wl-queries-float",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl("queries = 1e8").replace("queries = 8\n", "")},
        match="queries",
    ),
    Case(
        "wl-queries-huge",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl("queries = 100000000").replace("queries = 8\n", "")},
        match="queries",
    ),
    Case(
        "wl-queries-zero",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl("queries = 0").replace("queries = 8\n", "")},
        match="queries",
    ),
    Case(
        "wl-queue-huge",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl("queue_size = 1000000000").replace("queue_size = 4\n", "")},
        match="queue_size",
    ),
    Case(
        "wl-buffer-negative",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl("buffer_pages = -1").replace("buffer_pages = 24\n", "")},
        match="buffer_pages",
    ),
    Case(
        "wl-arrival-unknown",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl('arrival = "burst"')},
        match="arrival",
    ),
    Case(
        "wl-rate-nan",
        ["sched", "workload", "w.json"],
        {
            "w.json": '{"workload": {"arrival": "poisson", "rate": NaN}, "tables": {"a": 64}, "templates": {"t": {"parts": [{"table": "a"}]}}}'
        },
        match="rate",
    ),
    Case(
        "wl-rate-zero",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl('arrival = "poisson"\nrate = 0')},
        match="rate",
    ),
    Case("wl-no-templates", ["sched", "workload", "w.toml"], {"w.toml": wl(templates="")}, match="templates"),
    Case(
        "wl-template-not-table",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates="templates = 3\n")},
        match="templates",
    ),
    Case(
        "wl-weight-negative",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates='[templates.t1]\nweight = -1.0\nparts = [{table = "a"}]\n')},
        match="weight",
    ),
    Case(
        "wl-weight-nan",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates='[templates.t1]\nweight = nan\nparts = [{table = "a"}]\n')},
        match="weight",
    ),
    Case(
        "wl-weight-inf",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates='[templates.t1]\nweight = inf\nparts = [{table = "a"}]\n')},
        match="weight",
    ),
    Case(
        "wl-weight-text",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates='[templates.t1]\nweight = "heavy"\nparts = [{table = "a"}]\n')},
        match="weight",
    ),
    Case(
        "wl-weights-zero",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates='[templates.t1]\nweight = 0.0\nparts = [{table = "a"}]\n')},
        match="sum to 0",
    ),
    Case(
        "wl-parts-empty",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates="[templates.t1]\nparts = []\n")},
        match="parts",
    ),
    Case(
        "wl-part-not-table",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates="[templates.t1]\nparts = [3]\n")},
        match="part 0",
    ),
    Case(
        "wl-part-unknown-table",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "zz"'))},
        match="zz",
    ),
    Case(
        "wl-part-unknown-key",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", size = 3'))},
        match="size",
    ),
    Case(
        "wl-part-kind-unknown",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", kind = "hash"'))},
        match="hash",
    ),
    Case(
        "wl-part-pages-negative",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", pages = [-3, 4]'))},
        match="pages",
    ),
    Case(
        "wl-part-pages-reversed",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", pages = [9, 4]'))},
        match="lo > hi",
    ),
    Case(
        "wl-part-pages-text",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", pages = ["x", "y"]'))},
        match="pages",
    ),
    Case(
        "wl-part-pages-nan",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", pages = [nan, 4]'))},
        match="pages",
    ),
    Case(
        "wl-part-pages-huge",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", pages = [1, 1e30]'))},
        match="pages",
    ),
    Case(
        "wl-part-pages-too-many",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", pages = [100, 200]'))},
        match="region has",
    ),
    Case(
        "wl-part-region-nan",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", region = [nan, 1.0]'))},
        match="region",
    ),
    Case(
        "wl-part-region-outside",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", region = [0.5, 1.5]'))},
        match="region",
    ),
    Case(
        "wl-part-region-text",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(templates=part('table = "a", region = "ab"'))},
        match="region",
    ),
    Case(
        "wl-drift-not-table",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl().replace("[workload]", "drift = 3\n[workload]")},
        match="drift",
    ),
    Case(
        "wl-drift-at-negative",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(drift="[drift]\nat = -1\nweights = {t1 = 1.0}\n")},
        match="drift.at",
    ),
    Case(
        "wl-drift-unknown-template",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(drift="[drift]\nat = 2\nweights = {zz = 1.0}\n")},
        match="zz",
    ),
    Case(
        "wl-drift-weight-nan",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(drift="[drift]\nat = 2\nweights = {t1 = nan}\n")},
        match="drift",
    ),
    Case(
        "wl-drift-weights-zero",
        ["sched", "workload", "w.toml"],
        {"w.toml": wl(drift="[drift]\nat = 2\nweights = {t1 = 0.0}\n")},
        match="sum to 0",
    ),
    Case(
        "wl-json-duplicate-key",
        ["sched", "workload", "w.json"],
        {"w.json": '{"tables": {"a": 4}, "tables": {"b": 4}}'},
        match="twice",
    ),
    # ---- traces
    Case("trace-no-queries", ["sched", "workload", "t.json"], {"t.json": trace([])}, match="no queries"),
    Case(
        "trace-tables-bad",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"a": [1]}}], tables={"a": -1})},
        match="page count",
    ),
    Case("trace-query-not-object", ["sched", "workload", "t.json"], {"t.json": trace([5])}, match="query 0"),
    Case(
        "trace-block-out-of-range",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"a": [99]}}])},
        match="block ids",
    ),
    Case(
        "trace-block-text",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"a": ["x"]}}])},
        match="integers",
    ),
    Case(
        "trace-block-float",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"a": [1.5]}}])},
        match="integers",
    ),
    Case(
        "trace-block-nested",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"a": [[1, [2]]]}}])},
        match="integers",
    ),
    Case(
        "trace-unknown-table",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"zz": [1]}}])},
        match="zz",
    ),
    Case(
        "trace-empty-query",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {}}])},
        match="no blocks",
    ),
    Case(
        "trace-arrival-text",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"a": [1]}, "arrival": "soon"}])},
        match="query 0",
    ),
    Case(
        "trace-arrival-nan",
        ["sched", "workload", "t.json"],
        {"t.json": trace([{"blocks": {"a": [1]}, "arrival": float("nan")}])},
        match="arrival",
    ),
    Case(
        "trace-template-list",
        ["sched", "simulate", "-w", "t.json"],
        {"t.json": trace([{"blocks": {"a": [1]}, "template": [1]}])},
        match="template",
    ),
]


def _write(root: Path, files: dict[str, FileSpec]) -> None:
    for rel, spec in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if callable(spec):
            spec(p)
        elif isinstance(spec, bytes):
            p.write_bytes(spec)
        else:
            p.write_text(spec)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A work folder with a finished-looking run in runs/ that no failing command may touch."""
    old = tmp_path / "runs" / "old" / "done-1"
    old.mkdir(parents=True)
    (old / "results.json").write_text('{"acc": 0.5}\n')
    (old / "config.json").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_PROGRESS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@contextlib.contextmanager
def frozen(root: Path, folders: tuple[str, ...]):
    """Make folders read-only even for root (chattr +i), and writable again afterwards."""
    done = []
    try:
        for f in folders:
            p = root / f
            p.mkdir(parents=True, exist_ok=True)
            (p / "keep.txt").write_text("old")
            r = subprocess.run(["chattr", "+i", str(p)], capture_output=True)
            if r.returncode != 0 or os.access(p, os.W_OK) and _can_write(p):
                pytest.skip("cannot make a folder read-only here (chattr +i unsupported)")
            done.append(p)
        yield
    finally:
        for p in done:
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)


def _can_write(p: Path) -> bool:
    try:
        (p / ".probe").touch()
    except OSError:
        return False
    (p / ".probe").unlink()
    return True


def _check_files(root: Path, before: dict[str, str]) -> None:
    after = snapshot(root)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"files changed or removed by a failing command: {changed}"
    assert not leftovers(root), f"temp files left behind: {leftovers(root)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, workspace: Path, monkeypatch):
    _write(workspace, case.files)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v.replace("{ws}", str(workspace)))
    before = snapshot(workspace)
    with frozen(workspace, case.frozen):
        outcome = run_lab(case.argv, timeout=TIMEOUT)
    if case.code == 0:  # must report the problem and carry on
        assert outcome.code == 0 and "Traceback" not in outcome.err + outcome.out, outcome.err[-3000:]
    else:
        check_failure(outcome, usage=case.usage, match=case.match)
    _check_files(workspace, before)


def test_case_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


# -- the valid inputs the cases above break: they must work, so each case fails for its own defect ---------

CONTROLS = [
    ("sfa-task-file", ["sfa", "run", "--sequence", "seq.toml", *CHEAP], {"seq.toml": npz_task(), **GOOD_NPZ}),
    ("workload-file", ["sched", "workload", "w.toml", "--episodes", "2"], {"w.toml": wl()}),
    (
        "workload-json-poisson",
        ["sched", "simulate", "-w", "w.json"],
        {
            "w.json": json.dumps(
                {
                    "workload": {"arrival": "poisson", "queries": 4},
                    "tables": {"a": 64},
                    "templates": {"t": {"parts": [{"table": "a", "pages": [2, 4]}]}},
                }
            )
        },
    ),
    (
        "trace-file",
        ["sched", "simulate", "-w", "t.json"],
        {"t.json": trace([{"blocks": {"a": [1, 2]}}, {"blocks": {"a": [3]}, "arrival": 1.0}])},
    ),
]


@pytest.mark.parametrize("cid,argv,files", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_valid_input_works(cid, argv, files, workspace):
    _write(workspace, files)
    o = run_lab(argv, timeout=TIMEOUT)
    assert o.code == 0, o.err[-3000:]


# -- a database that is not there -----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("cmd", ["up", "status"])
def test_pg_dsn_down_is_one_line(cmd, workspace):
    dsn = f"host=127.0.0.1 port={_closed_port()} dbname=lab user=lab connect_timeout=3"
    before = snapshot(workspace)
    o = run_lab(["sched", "pg", cmd, "--dsn", dsn], timeout=TIMEOUT)
    check_failure(o, match="connect")
    _check_files(workspace, before)


# -- the in-process path against the console script ------------------------------------------------------

SUBPROCESS_IDS = [
    "core-unknown-command",
    "set-unknown-key",
    "sfa-file-npz-garbage",
    "wl-wl-non-utf8",
    "wl-queries-huge",
    "sim-trace-out-under-file",
]


@pytest.mark.parametrize("cid", SUBPROCESS_IDS)
def test_same_as_console_script(cid, workspace):
    """A few cases as real processes: the console script fails exactly like the in-process call."""
    case = next(c for c in CASES if c.id == cid)
    _write(workspace, case.files)
    before = snapshot(workspace)
    env = {"LAB_RUNS": str(workspace / "runs"), "LAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    o = run_lab_subprocess(case.argv, workspace, env, timeout=TIMEOUT)
    check_failure(o, usage=case.usage, match=case.match)
    _check_files(workspace, before)
    inproc = run_lab(case.argv, timeout=TIMEOUT)
    assert inproc.code == o.code and inproc.err_lines[-1:] == o.err_lines[-1:]

"""Bad input to `lab chess data|train` and to model loading (`lab chess uci --model`): every case must fail
with exit code 2, exactly one line on stderr starting with `error:`, no traceback, no finished-looking output
(meta.json) and every file that existed before byte-identical afterwards.

Cases run `lab_shared.cli.main` in this process with sys.argv set (the code path of the `lab` console
script: main() is where LabError becomes `error: ...` and exit code 2) to keep the file fast; a few run the
installed console script in a real process as well. Inputs are real: zstd frames made here, Stockfish for
the synth cases, a tiny exported GPT for the model cases.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from lab_transcendence.lichess import lichess_style_game

LAB = Path(sys.executable).parent / "lab"
SANS = ["e4", "e5", "Nf3", "Nc6", "Bb5", "a6", "Ba4", "Nf6", "O-O", "Be7"]


def _pgn(n: int) -> str:
    return "".join(lichess_style_game(SANS, "1-0", i, 1200 + i, 1300) for i in range(n))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Shared inputs: PGN/zstd files good and bad, a finished data set, a tiny exported model, fake engines."""
    from lab_transcendence.export import export_model
    from lab_transcendence.lichess import ingest
    from lab_transcendence.model import GPT, GPTConfig

    w = tmp_path_factory.mktemp("fuzz-chess")
    text = _pgn(400).encode()
    (w / "good.pgn").write_bytes(text)
    whole = zstandard.ZstdCompressor(level=3).compress(text)
    (w / "good.pgn.zst").write_bytes(whole)
    (w / "truncated.pgn.zst").write_bytes(whole[: len(whole) * 2 // 3])
    (w / "garbage.pgn.zst").write_bytes(bytes(range(256)) * 20)
    (w / "magic-then-garbage.pgn.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00\xff" * 500)
    (w / "trailing-garbage.pgn.zst").write_bytes(whole + b"this is not a zstd frame")
    (w / "empty.pgn").write_bytes(b"")
    (w / "empty.pgn.zst").write_bytes(b"")
    (w / "text.pgn").write_text("Dear diary,\nthis is not chess.\n\nNo games here.\n")
    (w / "binary.pgn").write_bytes(random.Random(0).randbytes(4096))
    (w / "a-folder.pgn").mkdir()
    (w / "a-file").write_text("not a folder\n")
    ingest(w / "good.pgn", w / "dataset", show_progress=False)
    (w / "no-meta").mkdir()
    (w / "no-meta" / "shard-00000.tokens.npy").write_bytes(b"")
    (w / "list-meta").mkdir()
    (w / "list-meta" / "meta.json").write_text("[1, 2, 3]")
    model = GPT(GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=16))
    export_model(model, w / "model", "char")
    notexec = w / "not-executable"
    notexec.write_text("#!/bin/sh\necho hi\n")
    notexec.chmod(0o644)
    chatty = w / "chatty-engine"
    chatty.write_text("#!/bin/sh\necho 'I am not a chess engine'\nexit 0\n")
    chatty.chmod(0o755)
    return w


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    """`lab ARGV` through lab_shared.cli.main in this process: (exit code, stdout, stderr)."""
    from lab_shared.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = ["lab", *argv]
    code: int = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # what a real process would print as a traceback
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv = old_argv
    return code, out.getvalue(), err.getvalue()


def _model_with(world: Path, dst: Path, change: Callable[[Path], None]) -> Path:
    shutil.copytree(world / "model", dst)
    change(dst)
    return dst


def _edit_config(**changes) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        for k, v in changes.items():
            if v is _DROP:
                cfg.pop(k)
            else:
                cfg[k] = v
        (folder / "config.json").write_text(json.dumps(cfg))

    return edit


_DROP = object()


def _write(name: str, text: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).write_text(text)

    return edit


# Each case: (id, argv from (world, case folder) -> list[str]). The case folder is the --out / run area.
LICHESS = ["chess", "data", "lichess"]
SYNTH = ["chess", "data", "synth", "--games", "2", "--rating-games", "0", "--max-plies", "4"]
TRAIN = ["chess", "train", "--preset", "tiny"]


def _li(src: str, *extra: str):
    return lambda w, d: [*LICHESS, str(w / src), "--out", str(d / "out"), *extra]


def _sy(*extra: str):
    return lambda w, d: [*SYNTH, "--out", str(d / "out"), *extra]


def _tr(*extra: str):
    return lambda w, d: [*TRAIN, "--data", str(w / "dataset"), *extra]


def _uci(change: Callable[[Path], None]):
    return lambda w, d: ["chess", "uci", "--model", str(_model_with(w, d / "m", change))]


CASES: list[tuple[str, Callable]] = [
    # data lichess: broken files
    ("lichess-truncated-zst", _li("truncated.pgn.zst")),
    ("lichess-garbage-zst", _li("garbage.pgn.zst")),
    ("lichess-magic-then-garbage", _li("magic-then-garbage.pgn.zst")),
    ("lichess-trailing-garbage", _li("trailing-garbage.pgn.zst")),
    ("lichess-empty-pgn", _li("empty.pgn")),
    ("lichess-empty-zst", _li("empty.pgn.zst")),
    ("lichess-plain-text", _li("text.pgn")),
    ("lichess-binary", _li("binary.pgn")),
    ("lichess-missing-file", _li("nope.pgn")),
    ("lichess-folder-as-file", _li("a-folder.pgn")),
    ("lichess-out-is-a-file", lambda w, d: [*LICHESS, str(w / "good.pgn"), "--out", str(w / "a-file")]),
    (
        "lichess-out-holds-other-data",
        lambda w, d: [*LICHESS, str(w / "good.pgn"), "--out", str(w / "dataset"), "--max-elo", "1250"],
    ),
    # data lichess: out-of-range options
    ("lichess-workers-negative", _li("good.pgn", "--workers", "-1")),
    ("lichess-block-mb-zero", _li("good.pgn", "--block-mb", "0")),
    ("lichess-block-mb-negative", _li("good.pgn", "--block-mb", "-5")),
    ("lichess-block-mb-huge", _li("good.pgn", "--block-mb", "100000")),
    ("lichess-max-games-zero", _li("good.pgn", "--max-games", "0")),
    ("lichess-max-games-negative", _li("good.pgn", "--max-games", "-3")),
    ("lichess-min-plies-negative", _li("good.pgn", "--min-plies", "-1")),
    ("lichess-max-plies-zero", _li("good.pgn", "--max-plies", "0")),
    ("lichess-max-below-min-plies", _li("good.pgn", "--min-plies", "20", "--max-plies", "10")),
    ("lichess-min-above-max-elo", _li("good.pgn", "--min-elo", "2000", "--max-elo", "1000")),
    ("lichess-max-elo-negative", _li("good.pgn", "--max-elo", "-5")),
    ("lichess-unknown-time-control", _li("good.pgn", "--time-control", "hyperbullet")),
    ("lichess-unknown-tokenizer", _li("good.pgn", "--tokenizer", "bytes")),
    ("lichess-all-filtered", _li("good.pgn", "--max-elo", "100")),
    # data synth: engines
    ("synth-stockfish-bin-false", _sy("--stockfish", "/bin/false")),
    ("synth-stockfish-missing", _sy("--stockfish", "./no-such-engine")),
    ("synth-stockfish-folder", lambda w, d: [*SYNTH, "--out", str(d / "out"), "--stockfish", str(w)]),
    (
        "synth-stockfish-not-executable",
        lambda w, d: [*SYNTH, "--out", str(d / "out"), "--stockfish", str(w / "not-executable")],
    ),
    (
        "synth-stockfish-not-uci",
        lambda w, d: [*SYNTH, "--out", str(d / "out"), "--stockfish", str(w / "chatty-engine")],
    ),
    ("synth-stockfish-not-on-path", _sy("--stockfish", "no-such-engine-on-path")),
    # data synth: out-of-range options
    ("synth-players-one", _sy("--players", "1")),
    ("synth-games-zero", _sy("--games", "0")),
    ("synth-games-negative", _sy("--games", "-5")),
    ("synth-depth-zero", _sy("--depth", "0")),
    ("synth-depth-huge", _sy("--depth", "500")),
    ("synth-rating-games-negative", _sy("--rating-games", "-1")),
    ("synth-vote-games-negative", _sy("--vote-games", "-2")),
    ("synth-max-plies-zero", _sy("--max-plies", "0")),
    ("synth-anchor-unknown", _sy("--anchors", "9")),
    ("synth-anchors-not-numbers", _sy("--anchors", "x,y")),
    ("synth-workers-negative", _sy("--workers", "-2")),
    ("synth-unknown-tokenizer", _sy("--tokenizer", "bytes")),
    ("synth-out-is-a-file", lambda w, d: [*SYNTH, "--out", str(w / "a-file")]),
    # train: options and data
    ("train-block-size-zero", _tr("--block-size", "0")),
    ("train-block-size-one", _tr("--block-size", "1")),
    ("train-block-size-huge", _tr("--block-size", "10000000")),
    ("train-n-layer-zero", _tr("--set", "n_layer=0")),
    ("train-n-head-not-dividing", _tr("--set", "n_head=3")),
    ("train-n-embd-negative", _tr("--set", "n_embd=-8")),
    ("train-params-huge", _tr("--set", "n_embd=16384", "--set", "n_layer=256")),
    ("train-val-fraction-one", _tr("--set", "val_fraction=1.0")),
    ("train-dropout-above-one", _tr("--set", "dropout=1.5")),
    ("train-eval-batches-zero", _tr("--set", "eval_batches=0")),
    ("train-max-steps-zero", _tr("--max-steps", "0")),
    ("train-batch-size-negative", _tr("--batch-size", "-1")),
    ("train-lr-nan", _tr("--lr", "nan")),
    (
        "train-unknown-preset",
        lambda w, d: ["chess", "train", "--data", str(w / "dataset"), "--preset", "huge"],
    ),
    ("train-data-missing", lambda w, d: [*TRAIN, "--data", str(d / "nope")]),
    ("train-data-without-meta", lambda w, d: [*TRAIN, "--data", str(w / "no-meta")]),
    ("train-data-meta-is-a-list", lambda w, d: [*TRAIN, "--data", str(w / "list-meta")]),
    # model loading: config.json and friends
    ("model-config-is-a-list", _uci(_write("config.json", "[1, 2]"))),
    ("model-config-not-json", _uci(_write("config.json", "{not json"))),
    ("model-config-lacks-n-layer", _uci(_edit_config(n_layer=_DROP))),
    ("model-config-lacks-vocab", _uci(_edit_config(vocab_size=_DROP))),
    ("model-config-n-embd-string", _uci(_edit_config(n_embd="16"))),
    ("model-config-n-head-float", _uci(_edit_config(n_head=2.0))),
    ("model-config-n-layer-negative", _uci(_edit_config(n_layer=-2))),
    ("model-config-n-positions-zero", _uci(_edit_config(n_positions=0, n_ctx=0))),
    ("model-config-n-embd-huge", _uci(_edit_config(n_embd=10**9))),
    ("model-config-vocab-huge", _uci(_edit_config(vocab_size=10**12))),
    ("model-config-more-layers-than-file", _uci(_edit_config(n_layer=200))),
    ("model-config-wider-than-file", _uci(_edit_config(n_embd=4096, n_head=2))),
    ("model-config-vocab-below-tokenizer", _uci(_edit_config(vocab_size=8))),
    ("model-type-bert", _uci(_edit_config(model_type="bert"))),
    ("model-meta-is-a-list", _uci(_write("lab_chess.json", "[]"))),
    ("model-meta-unknown-tokenizer", _uci(_write("lab_chess.json", '{"tokenizer": "bytes"}'))),
    ("model-weights-garbage", _uci(_write("model.safetensors", "garbage" * 100))),
]


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_PROGRESS", "0")
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _check(code: int, out: str, err: str, before: dict, after: dict, case: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, f"{case}: traceback\n{err}"
    assert code == 2, f"{case}: exit {code}\nstdout: {out}\nstderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: stderr is not one error line:\n{err}"
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"{case}: files changed or removed: {changed}"
    new_meta = [k for k in set(after) - set(before) if k.endswith("meta.json")]
    assert not new_meta, f"{case}: a finished-looking data set appeared: {new_meta}"


@pytest.mark.stockfish
@pytest.mark.parametrize("case,argv", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(world, tmp_path, case, argv):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("a file the user had here\n")
    args = argv(world, tmp_path)
    roots = [world, tmp_path]
    before = {str(r): _snapshot(r) for r in roots}
    code, out, err = _run_main(args)
    for r in roots:
        after = _snapshot(r)
        mine = {k: v for k, v in after.items() if not k.startswith("runs/")}
        _check(code, out, err, before[str(r)], mine, case)


def test_there_are_enough_cases():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.stockfish
@pytest.mark.parametrize(
    "case,argv",
    [
        ("truncated-zst", lambda w, d: [*LICHESS, str(w / "truncated.pgn.zst"), "--out", str(d / "o")]),
        (
            "stockfish-bin-false",
            lambda w, d: [*SYNTH, "--out", str(d / "o"), "-j", "2", "--stockfish", "/bin/false"],
        ),
        ("train-block-size-zero", lambda w, d: [*TRAIN, "--data", str(w / "dataset"), "--block-size", "0"]),
    ],
    ids=["truncated-zst", "stockfish-bin-false", "train-block-size-zero"],
)
def test_real_process_same_outcome(world, tmp_path, case, argv):
    """The same cases through the installed `lab` console script in its own process."""
    env = {**os.environ, "LAB_PROGRESS": "0", "LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    before = _snapshot(world)
    proc = subprocess.run(
        [str(LAB), *argv(world, tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    _check(proc.returncode, proc.stdout, proc.stderr, before, _snapshot(world), case)
    assert not (tmp_path / "o" / "meta.json").exists()

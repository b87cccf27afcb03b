"""Inputs checked at the door for `lab chess data`: zstd frames checked to the end, no-game files refused,
engines health-checked (bounded, one line), `--stockfish ./sf` taken as a path, model configs checked
before anything is allocated."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from lab_shared.errors import LabError
from lab_transcendence.engines import health_check, resolve_stockfish
from lab_transcendence.lichess import CorruptInput, ingest, lichess_style_game, load_games

LAB = Path(sys.executable).parent / "lab"
STOCKFISH = "/usr/games/stockfish"
SANS = ["d4", "d5", "c4", "e6", "Nc3", "Nf6", "Bg5", "Be7"]


def _text(n: int, start: int = 0) -> bytes:
    return "".join(
        lichess_style_game(SANS, "1/2-1/2", i, 1500, 1600) for i in range(start, start + n)
    ).encode()


def _lab(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    e = {**os.environ, "LAB_PROGRESS": "0", **(env or {})}
    return subprocess.run([str(LAB), *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)


def test_multi_frame_zst_is_read_to_the_end(tmp_path):
    c = zstandard.ZstdCompressor()
    src = tmp_path / "frames.pgn.zst"
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"note"  # a skippable frame (metadata), first
    src.write_bytes(
        skippable + c.compress(_text(300)) + c.compress(_text(200, 300)) + c.compress(_text(5, 500))
    )
    meta = ingest(src, tmp_path / "out", block_chars=50_000, show_progress=False)
    assert meta["games_kept"] == 505
    assert len(load_games(tmp_path / "out")[0]) == 505


def test_truncated_zst_is_an_error_naming_where_it_stops(tmp_path):
    whole = zstandard.ZstdCompressor().compress(_text(3000))
    src = tmp_path / "cut.pgn.zst"
    src.write_bytes(whole[: len(whole) - 100])
    zstd = subprocess.run(["zstd", "-t", str(src)], capture_output=True, text=True)
    assert zstd.returncode != 0  # the reference tool agrees the file is broken
    out = tmp_path / "out"
    with pytest.raises(CorruptInput) as e:
        ingest(src, out, block_chars=40_000, show_progress=False)
    msg = str(e.value)
    assert "truncated" in msg and f"at byte {len(whole) - 100:,}" in msg and "games ingested before it" in msg
    seen = int(msg.split("; ")[-2].split()[0].replace(",", ""))
    assert seen > 0  # blocks before the cut were read, and the message says how many games
    assert not (out / "meta.json").exists()
    # the same through the CLI: exit 2, one line
    proc = _lab("chess", "data", "lichess", str(src), "--out", str(tmp_path / "cli"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "truncated zstd file" in proc.stderr and not (tmp_path / "cli" / "meta.json").exists()


def test_no_games_is_an_error_unless_allowed(tmp_path):
    src = tmp_path / "notes.pgn"
    src.write_text("shopping list\n\neggs\nmilk\n")
    with pytest.raises(LabError, match="no games kept"):
        ingest(src, tmp_path / "a", show_progress=False)
    assert not (tmp_path / "a").exists()  # the folder this run made is taken back
    meta = ingest(src, tmp_path / "b", show_progress=False, allow_empty=True)
    assert meta["games_kept"] == 0 and (tmp_path / "b" / "meta.json").is_file()
    proc = _lab("chess", "data", "lichess", str(src), "--out", str(tmp_path / "c"), "--allow-empty")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.stockfish
def test_health_check_passes_stockfish_and_fails_others_in_bounded_time(tmp_path):
    assert "Stockfish" in health_check(STOCKFISH)
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nsleep 30\n")  # never answers: the timeout, not a hang
    silent.chmod(0o755)
    t0 = time.monotonic()
    with pytest.raises(LabError, match=r"failed its health check \(2 tries\): no uciok within 0.5s"):
        health_check(silent, timeout=0.5, tries=2)
    assert time.monotonic() - t0 < 20
    with pytest.raises(LabError, match="exited with status 1 before answering uciok"):
        health_check("/bin/false", tries=2)
    half = tmp_path / "half"  # says uciok but never readyok
    half.write_text("#!/bin/sh\nread x\necho 'id name Half'\necho uciok\nsleep 30\n")
    half.chmod(0o755)
    with pytest.raises(LabError, match="no readyok within 0.5s"):
        health_check(half, timeout=0.5, tries=1)


@pytest.mark.stockfish
def test_broken_stockfish_is_one_line_not_a_respawn_loop(tmp_path):
    t0 = time.monotonic()
    proc = _lab("chess", "data", "synth", "--out", str(tmp_path / "o"), "--games", "4", "-j", "2",
                "--stockfish", "/bin/false", timeout=60)  # fmt: skip
    assert time.monotonic() - t0 < 50
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: engine /bin/false failed its health check (3 tries): exited with status 1 before answering uciok"
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.stockfish
def test_engine_dying_mid_corpus_is_retried_then_one_error(tmp_path):
    """An engine that passes the handshake but dies on its first search: bounded restarts, then one line."""
    flaky = tmp_path / "flaky"
    flaky.write_text(
        '#!/bin/sh\nwhile read line; do case "$line" in\n'
        "uci) echo 'id name Flaky'; echo uciok;; isready) echo readyok;; go*) exit 3;; quit) exit 0;;\n"
        "esac; done\n"
    )
    flaky.chmod(0o755)
    proc = _lab("chess", "data", "synth", "--out", str(tmp_path / "o"), "--games", "3", "--rating-games", "0",
                "-j", "2", "--stockfish", str(flaky), timeout=90)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: engine ")
        and "failed 3 times in corpus game" in lines[0]
    )
    assert not (tmp_path / "o" / "meta.json").exists()


def test_stockfish_path_with_a_slash_is_relative_to_cwd_not_path(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    decoy = bindir / "sf"
    decoy.write_text("#!/bin/sh\nexit 1\n")
    decoy.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "sf").symlink_to(STOCKFISH)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(work)
    assert resolve_stockfish("./sf") == work / "sf"  # the file here, not the decoy on PATH
    assert resolve_stockfish("sf") == decoy  # a bare name: looked up on PATH
    assert resolve_stockfish(Path("sf")) == work / "sf"  # a Path is always a path
    with pytest.raises(LabError, match="not executable"):
        (work / "plain").write_text("x")
        resolve_stockfish("./plain")
    with pytest.raises(LabError, match="not a file"):
        resolve_stockfish("./")
    with pytest.raises(LabError, match="not found"):
        resolve_stockfish("./missing")


@pytest.mark.stockfish
def test_synth_cli_takes_dot_slash_as_a_path(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sf").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "sf").chmod(0o755)
    (tmp_path / "sf").symlink_to(STOCKFISH)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    proc = _lab("chess", "data", "synth", "--out", "o", "--games", "2", "--rating-games", "0",
                "--max-plies", "6", "-j", "1", "--stockfish", "./sf", cwd=tmp_path, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "meta.json").read_text())["games_kept"] == 2
    proc = _lab("chess", "data", "synth", "--out", "o2", "--games", "2", "--rating-games", "0",
                "--stockfish", "sf", cwd=tmp_path, env=env)  # fmt: skip
    assert proc.returncode == 2 and "failed its health check" in proc.stderr  # the PATH one: broken


def test_model_config_checked_before_allocating(tmp_path):
    """A config.json asking for a huge model is refused from its numbers and the safetensors header alone."""
    import resource

    from lab_transcendence.export import export_model, load_model
    from lab_transcendence.model import GPT, GPTConfig

    folder = export_model(
        GPT(GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=1, n_embd=8)), tmp_path / "m", "char"
    )
    cfg = json.loads((folder / "config.json").read_text())
    for change, pattern in [
        ({"n_embd": 8192, "n_layer": 64}, "51.5B parameters exceeds the cap of 4B"),
        ({"n_embd": 4096, "n_layer": 16}, "transformer.wte.weight has shape"),  # 3.2B floats if allocated
        ({"n_layer": 1}, None),
        ({"n_layer": 3}, "holds 1 layers, config.json says n_layer=3"),
        ({"n_layer": 10**6}, r"n_layer \(--n-layer\) must be in 1..256"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"n_head": True}, "n_head must be an integer"),
    ]:
        (folder / "config.json").write_text(json.dumps({**cfg, **change}))
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if pattern is None:
            model, tok, _ = load_model(folder)
            assert model.config.n_layer == 1 and tok.vocab_size == 32
            continue
        with pytest.raises(LabError, match=pattern):
            load_model(folder)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 500_000  # KiB: nothing big made


def test_analyze_diversity_reads_a_zst_to_its_end(tmp_path):
    from lab_transcendence.analyze import opening_lines

    whole = zstandard.ZstdCompressor().compress(_text(300))
    good = tmp_path / "ok.pgn.zst"
    good.write_bytes(whole)
    assert len(list(opening_lines(good, plies=4))) == 300
    cut = tmp_path / "cut.pgn.zst"
    cut.write_bytes(whole[: len(whole) - 50])
    with pytest.raises(CorruptInput, match="truncated"):
        list(opening_lines(cut, plies=4))
    proc = _lab("chess", "analyze", "diversity", str(cut))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "truncated" in proc.stderr

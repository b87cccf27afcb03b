"""`lab chess data positions CORPUS --out DIR --backend ray`: a unit of games a Ray task, the shards written
by the driver: the same bytes as the local conversion, and a rerun redoes only the missing shards."""

import pytest
from typer.testing import CliRunner

from lab_shared.backend import Backend
from lab_shared.tools import find_stockfish
from lab_transcendence.positions import convert
from lab_transcendence.synth import SynthSettings, generate_corpus

pytestmark = pytest.mark.stockfish


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("positions-ray") / "corpus"
    s = SynthSettings(players=2, games=6, seed=1, depth=1, rating_games=0, max_plies=40)
    generate_corpus(out, s, find_stockfish(), workers=1, show_progress=False)
    return out


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.npy"))}


def test_ray_shards_are_the_local_bytes_and_resume(ray_local, corpus, tmp_path):
    local = convert(corpus, tmp_path / "local", workers=1, unit_games=2, val_every=2, show_progress=False)
    ray = convert(
        corpus, tmp_path / "ray", unit_games=2, val_every=2, show_progress=False, backend=Backend("ray")
    )
    assert len(local["shards"]) == 3 and _files(tmp_path / "local") == _files(tmp_path / "ray")
    assert {k: v for k, v in local.items() if k != "seconds"} == {
        k: v for k, v in ray.items() if k != "seconds"
    }
    # a killed conversion: meta.json not yet written and one shard missing; the rerun redoes only that one
    (tmp_path / "ray" / "meta.json").unlink()
    for k in ("x", "y", "game", "ply"):
        (tmp_path / "ray" / f"shard-00001.{k}.npy").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("shard-0000[02].*")}
    convert(corpus, tmp_path / "ray", unit_games=2, val_every=2, show_progress=False, backend=Backend("ray"))
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")
    assert kept == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("shard-0000[02].*")}


def test_cli_backend_ray_converts(ray_local, corpus, tmp_path):
    from lab_transcendence.cli import app

    r = CliRunner().invoke(app, ["data", "positions", str(corpus), "--out", str(tmp_path / "o"), "--unit-games",
                                 "2", "--backend", "ray"])  # fmt: skip
    assert r.exit_code == 0, r.output
    convert(corpus, tmp_path / "l", workers=1, unit_games=2, show_progress=False)
    assert _files(tmp_path / "o") == _files(tmp_path / "l") and len(_files(tmp_path / "o")) == 12

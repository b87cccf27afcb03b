"""The corpus move vocabulary (vocab.py): frequent moves + a character fallback, exported as a Hugging Face
tokenizer with the same ids, pre-tokenized uint16 shards that `lab chess train` reads and resumes on exactly,
the arena player on such a model, and bad vocabulary / shard folders as one-line errors (exit 2)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import chess
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lab_shared.errors import LabError
from lab_shared.io import load_tensors, read_json
from lab_transcendence.cli import app
from lab_transcendence.lichess import lichess_style_game
from lab_transcendence.vocab import VocabTokenizer, build_vocab, count_moves

LAB = Path(sys.executable).parent / "lab"


def random_games(n: int, seed: int = 0, plies: int = 60) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b, sans = chess.Board(), []
        while not b.is_game_over() and len(sans) < plies:
            m = rng.choice(list(b.legal_moves))
            sans.append(b.san(m))
            b.push(m)
        out.append(sans)
    return out


def transcript(sans: list[str]) -> str:
    return ";" + " ".join(f"{i // 2 + 1}.{s}" if i % 2 == 0 else s for i, s in enumerate(sans))


@pytest.fixture(scope="module")
def games() -> list[str]:
    return [transcript(g) for g in random_games(40)]


@pytest.fixture(scope="module")
def vocab(games) -> VocabTokenizer:
    counts, n = count_moves(games)
    assert n == 40
    return build_vocab(counts, min_count=3)


def test_vocab_keeps_frequent_moves_and_spells_the_rest(games, vocab):
    counts, _ = count_moves(games)
    assert set(vocab.moves) == {m for m, c in counts.items() if c >= 3}
    assert vocab.moves[0] == max(counts, key=lambda m: counts[m])  # most frequent first
    assert vocab.vocab_size == 2 + len(vocab.moves) + 3 * 29
    for text in games:
        assert vocab.decode(vocab.encode(text)) == text
    unseen = "Nbxd7+"
    assert unseen not in vocab.stoi
    ids = vocab.encode_move(unseen)
    assert len(ids) == len(unseen) and ids[-1] in vocab.final_ids and not set(ids[:-1]) & vocab.final_ids
    assert vocab.move_text(ids) == unseen
    text = ";1.e4 e5 2.Nf3 Nbxd7+ 3.exd8=N#;1.d4"
    assert vocab.decode(vocab.encode(text)) == text
    frequent = vocab.moves[0]
    assert vocab.encode_move(frequent) == [2] and vocab.move_text([2]) == frequent
    assert vocab.move_text(ids[:-1]) == "" and vocab.move_text([ids[0], 2]) == ""  # not a whole move
    with pytest.raises(ValueError, match="outside"):
        vocab.encode(";1.e4 Z")


def test_vocab_file_round_trip_and_bad_files(tmp_path, vocab):
    path = vocab.save(tmp_path / "v.json")
    again = VocabTokenizer.load(path)
    assert again.itos == vocab.itos and again.info["min_count"] == 3
    for name, body in [("garbage.json", "{not json"), ("list.json", "[1, 2]"), ("other.json", '{"format": "x"}'),
                       ("moves.json", json.dumps({"format": "lab-chess-vocab-1", "moves": ["e4", "Zz9"]}))]:  # fmt: skip
        (tmp_path / name).write_text(body)
        with pytest.raises(LabError):
            VocabTokenizer.load(tmp_path / name)
    with pytest.raises(LabError, match="not found"):
        VocabTokenizer.load(tmp_path / "missing.json")


def test_export_autotokenizer_gives_lab_ids(tmp_path, games, vocab):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lab_transcendence.export import export_model, load_model
    from lab_transcendence.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    folder = export_model(model, tmp_path / "m", vocab, {"max_rating": 1000})
    hf = AutoTokenizer.from_pretrained(str(folder))
    assert len(hf) == vocab.vocab_size
    for text in [*games[:10], ";1.e4 e5 2.Nf3 Nbxd7+ 3.exd8=N#;1.d4", "".join(games[:3])]:
        ids = hf(text)["input_ids"]
        assert ids == vocab.encode(text)
        assert hf.decode(ids) == " ".join(vocab.split_words(ids))  # moves without their numbers
    with pytest.raises(Exception, match="unk|UNK"):  # never a silent drop
        hf(";1.e4 Z")
    loaded, tok, meta = load_model(folder)
    assert tok.kind == "vocab" and tok.itos == vocab.itos and meta["tokenizer"] == "vocab"
    x = torch.tensor([vocab.encode(games[0])[:64]])
    theirs = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), theirs(x).logits, atol=1e-5)


def test_player_samples_and_scores_vocab_moves(vocab):
    from lab_transcendence.arena import MoveRequest
    from lab_transcendence.model import GPT, GPTConfig
    from lab_transcendence.player import ModelPlayer, MoveCodec

    codec = MoveCodec(vocab, 64)
    assert codec.continuation("Nbxd7+") == vocab.encode_move("Nbxd7+")
    assert codec.text(codec.continuation("Nbxd7+")) == "Nbxd7+"
    assert codec.prompt(["e4", "e5"]) == vocab.encode(";1.e4 e5")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    board = chess.Board()
    for san in ["e4", "e5", "Nf3"]:
        board.push_san(san)
    req = [MoveRequest("g0", board, ["e4", "e5", "Nf3"], 0), MoveRequest("g1", chess.Board(), [], 1)]
    masked = ModelPlayer(model, vocab, 1.0, "masked").select(req)
    assert all(d.move in r.board.legal_moves for d, r in zip(masked, req, strict=True))
    moves, lp = ModelPlayer(model, vocab, 1.0, "masked").legal_logprobs(req[:1])[0]
    assert len(moves) == board.legal_moves.count() and np.isclose(np.logaddexp.reduce(lp), 0.0)
    paper = ModelPlayer(model, vocab, 1.0, "paper").select(req)
    assert all(d.move is None or d.move in r.board.legal_moves for d, r in zip(paper, req, strict=True))


def _run(*args) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def test_pretokenized_shards_train_and_resume_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_PROGRESS", "0")
    pgn = tmp_path / "g.pgn"
    pgn.write_text(
        "".join(lichess_style_game(s, "1/2-1/2", i, 900, 950) for i, s in enumerate(random_games(120, 1)))
    )
    _run("data", "lichess", pgn, "--out", tmp_path / "corpus", "-j", 1)
    out = _run("data", "vocab", tmp_path / "corpus", "--out", tmp_path / "vocab.json", "--min-count", 2)
    assert "vocab_size" in out
    out = _run(
        "data", "tokenize", tmp_path / "corpus", "--vocab", tmp_path / "vocab.json", "--out", tmp_path / "tok"
    )
    meta = read_json(tmp_path / "tok/meta.json")
    assert meta["tokenizer"] == "vocab" and meta["games_kept"] == 120 and meta["dtype"] == "uint16"
    shard = np.load(tmp_path / "tok/shard-00000.tokens.npy", mmap_mode="r")
    assert isinstance(shard, np.memmap) and shard.dtype == np.uint16
    from lab_transcendence.positions import convert  # a vocab corpus replays like any other

    assert convert(tmp_path / "tok", tmp_path / "pos", show_progress=False)["positions"] == meta["plies"]
    # a size cap keeps the games that fit
    _run("data", "tokenize", tmp_path / "corpus", "--vocab", tmp_path / "vocab.json", "--out", tmp_path / "small",
         "--max-mib", 0.7 * meta["bytes"] / (1 << 20))  # fmt: skip
    small = read_json(tmp_path / "small/meta.json")
    (tmp_path / "mine").mkdir()  # --force replaces a pre-tokenized folder only, never another folder
    (tmp_path / "mine/keep.txt").write_text("x")
    res = CliRunner().invoke(app, ["data", "tokenize", str(tmp_path / "corpus"), "--vocab", str(tmp_path / "vocab.json"),
                                   "--out", str(tmp_path / "mine"), "--force"])  # fmt: skip
    assert isinstance(res.exception, LabError) and (tmp_path / "mine/keep.txt").is_file()
    assert small["truncated"] and 0 < small["games_kept"] < 120 and small["bytes"] <= 0.7 * meta["bytes"]
    common = ["train", "--data", tmp_path / "tok", "--preset", "tiny", "--block-size", 31, "--batch-size", 4,
              "--device", "cpu", "--set", "trainer.ckpt_every=3"]  # fmt: skip
    full = _run(*common, "--max-steps", 6, "--name", "full").split("run: ")[1].split()[0]
    part = _run(*common, "--max-steps", 3, "--name", "part").split("run: ")[1].split()[0]
    _run("train", "--resume", part, "--max-steps", 6)
    a, b = load_tensors(f"{full}/model/model.safetensors"), load_tensors(f"{part}/model/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    res = read_json(f"{full}/results.json")
    vocab = VocabTokenizer.load(tmp_path / "vocab.json")
    assert res["tokenizer"] == "vocab" and res["vocab_size"] == vocab.vocab_size
    assert a["transformer.wte.weight"].shape[0] == vocab.vocab_size
    assert (Path(full) / "model/vocab.json").is_file()


def _lab(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAB_PROGRESS": "0"}
    return subprocess.run(
        [str(LAB), "chess", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


def test_bad_vocab_and_shard_folders_are_one_line_errors(tmp_path, vocab):
    (tmp_path / "bad.json").write_text('{"moves": 3}')
    # a folder with a meta.json of a vocab data set whose vocab.json is not a vocabulary
    tok = tmp_path / "tok"
    tok.mkdir()
    np.save(tok / "shard-00000.tokens.npy", np.array([1, 2, 3], dtype=np.uint16))
    np.save(tok / "shard-00000.offsets.npy", np.array([0, 3], dtype=np.int64))
    meta = {"tokenizer": "vocab", "dtype": "uint16", "shards": ["shard-00000"], "games_kept": 1}
    (tok / "meta.json").write_text(json.dumps(meta))
    (tok / "vocab.json").write_text("[]")
    (tmp_path / "empty").mkdir()
    cases = [
        (("data", "tokenize", tmp_path, "--vocab", tmp_path / "bad.json", "--out", tmp_path / "o"), "not a move vocabulary"),
        (("train", "--data", tok, "--preset", "tiny", "--max-steps", 1), "not a move vocabulary"),
        (("train", "--data", tmp_path / "empty", "--preset", "tiny", "--max-steps", 1), "no meta.json"),
    ]  # fmt: skip
    for args, msg in cases:
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert isinstance(res.exception, LabError), res.output
        assert msg in str(res.exception) and "\n" not in str(res.exception)
    proc = _lab(*cases[0][0])  # through `lab`: one line on stderr, exit 2
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and cases[0][1] in proc.stderr
    assert not (tmp_path / "o").exists()
    # ids beyond the vocabulary, or the wrong dtype: named, nothing trained
    vocab.save(tok / "vocab.json")
    np.save(tok / "shard-00000.tokens.npy", np.array([1, 2, vocab.vocab_size], dtype=np.uint16))
    from lab_transcendence.pretok import check_token_ids

    with pytest.raises(LabError, match="holds id"):
        check_token_ids(tok, meta, vocab.vocab_size)
    np.save(tok / "shard-00000.tokens.npy", np.array([1, 2, 3], dtype=np.uint8))
    with pytest.raises(LabError, match="uint8"):
        check_token_ids(tok, meta, vocab.vocab_size)

"""Training blocks as in the paper: joined games, a cut game restarts whole in the next block."""

import numpy as np
import pytest

from lab_shared.errors import LabError
from lab_transcendence.blocks import BlockDataset, block_layout, build_blocks, cached_blocks, split_games
from lab_transcendence.tokenizer import get_tokenizer


def games_of(texts):
    tok = get_tokenizer("char")
    return [np.frombuffer(tok.encode_bytes(t), dtype=np.uint8) for t in texts]


def test_cut_game_restarts_whole():
    tok = get_tokenizer("char")
    texts = [";1.e4 e5", ";1.d4 d5 2.c4", ";1.c4", ";1.Nf3 Nf6 2.g3 g6"]  # 8, 13, 5, 19 chars
    blocks = build_blocks(games_of(texts), 16)
    got = [tok.decode(b) for b in blocks]
    assert got[0] == ";1.e4 e5;1.d4 d5"  # game 2 cut at the block end ...
    assert got[1] == ";1.d4 d5 2.c4;1."  # ... restarts whole; game 3 cut
    assert got[2] == ";1.c4;1.Nf3 Nf6 "  # game 3 whole; game 4 cut
    assert got[3] == ";1.Nf3 Nf6 2.g3 "  # game 4 longer than a block: one block alone
    assert len(got) == 4  # game 4's tail is dropped; no unfinished block
    assert all(g.startswith(";1.") for g in got)


def test_layout_counts_and_exact_fill():
    assert block_layout([4, 4, 4, 4], 8) == [[(0, 4), (1, 4)], [(2, 4), (3, 4)]]
    assert block_layout([3, 3, 3], 8) == [[(0, 3), (1, 3), (2, 2)]]  # last game cut; it has no next block
    assert block_layout([20], 8) == [[(0, 8)]]
    assert block_layout([], 8) == []


def test_split_cache_and_dataset(tmp_path):
    games = games_of([";1.e4 e5 2.Nf3 Nc6"] * 50)
    train, val = split_games(games, 0.1, seed=0)
    assert len(train) == 45 and len(val) == 5
    a = cached_blocks(tmp_path, "train", train, 33)
    b = cached_blocks(tmp_path, "train", train, 33)  # the cached, memory-mapped copy
    assert isinstance(b, np.memmap) and np.array_equal(a, b)
    ds = BlockDataset(b)
    batch = ds.__getitems__([0, 2, 1])
    assert batch.shape == (3, 33) and str(batch.dtype) == "torch.int64"
    with pytest.raises(LabError):
        BlockDataset(build_blocks(games[:1], 1000))

"""expert_labels.sample_positions: one replay per sampled game gives exactly the positions of replaying the
game up to each sampled ply (the seeded draws unchanged); games without moves are never drawn."""

import random

import chess
import pytest

from lab_shared.errors import LabError
from lab_transcendence.expert_labels import sample_positions
from lab_transcendence.positions import transcript_sans

TEXTS = [
    ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4 Nf6 5.O-O Be7",
    ";",
    ";1.d4 d5 2.c4 e6 3.Nc3 Nf6 4.Bg5 Be7 5.e3 O-O 6.Nf3 h6",
    ";1.f3 e5 2.g4 Qh4#",
    ";1.e4 c5",
]


def _naive(texts, n, seed):
    """The reference: a replay from the start for every sample (the same RNG draws)."""
    rng = random.Random(f"labels-{seed}")
    games = [(g, transcript_sans(t)) for g, t in enumerate(texts)]
    games = [(g, s) for g, s in games if s]
    out = []
    for _ in range(n):
        g, sans = games[rng.randrange(len(games))]
        ply = rng.randrange(len(sans))
        board = chess.Board()
        for san in sans[:ply]:
            board.push_san(san)
        out.append((g, ply, board.fen()))
    return out


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_sampled_positions_match_a_full_replay_per_sample(seed):
    got = sample_positions(TEXTS, 200, seed)
    assert got == _naive(TEXTS, 200, seed)
    assert 1 not in {g for g, _, _ in got}  # the empty game is never drawn
    assert len({(g, p) for g, p, _ in got}) > 20  # repeats and many distinct positions both occur


def test_a_corpus_without_moves_is_one_line():
    with pytest.raises(LabError, match="no moves"):
        sample_positions([";", ";"], 3, 0)

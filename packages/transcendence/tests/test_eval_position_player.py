"""The position player's fast batched path: the folded inference copy gives the model's logits, and a
batch (with repeated positions) gives each game what it gets alone."""

import random

import chess
import numpy as np
import pytest
import torch

from lab_transcendence.arena import MoveRequest
from lab_transcendence.board import encode
from lab_transcendence.position_config import PositionConfig
from lab_transcendence.position_inference import inference_copy
from lab_transcendence.position_model import PositionPolicy
from lab_transcendence.position_player import PositionPlayer


def _model(arch: str) -> PositionPolicy:
    torch.manual_seed(0)
    m = PositionPolicy(PositionConfig(arch=arch, width=16, layers=2, heads=2, head_dim=8))
    for mod in m.modules():  # batch norms with trained-looking statistics, so folding is not a no-op
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.5)
            mod.running_var.uniform_(0.3, 3.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.3)
    return m.eval()


def _boards(n: int, seed: int = 3) -> list[chess.Board]:
    rng, out, b = random.Random(seed), [], chess.Board()
    while len(out) < n:
        if b.is_game_over() or b.ply() > 60:
            b = chess.Board()
        out.append(b.copy(stack=False))
        b.push(rng.choice(list(b.legal_moves)))
    return out


@pytest.mark.parametrize("arch", ["cnn", "transformer"])
def test_inference_copy_gives_the_models_logits(arch):
    model = _model(arch)
    x = torch.from_numpy(np.stack([encode(b) for b in _boards(40)]))
    with torch.no_grad():
        ref, fast = model(x), inference_copy(model)(x)
    assert torch.allclose(ref, fast, atol=1e-4, rtol=1e-4)
    assert (
        not any(isinstance(m, torch.nn.BatchNorm2d) for m in inference_copy(model).modules()) or arch != "cnn"
    )
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == (arch == "cnn")  # untouched


def test_batched_select_equals_one_game_at_a_time_with_repeats():
    player = PositionPlayer(_model("cnn"), 1.0)  # T = 1: sampling, so the random streams matter too
    boards = _boards(24) + [chess.Board()] * 8  # 8 games still at the start: one forward row for them
    reqs = [MoveRequest(f"g{i}", b, [], seed=i) for i, b in enumerate(boards)]
    batched = player.select(reqs)
    single = [player.select([r])[0] for r in reqs]
    assert [d.move for d in batched] == [d.move for d in single]
    many = player.legal_logprobs(boards)
    for b, (moves, lp) in zip(boards, many, strict=True):
        alone_moves, alone_lp = player.legal_logprobs([b])[0]
        assert moves == alone_moves == list(b.legal_moves)
        assert np.allclose(lp, alone_lp, atol=1e-6) and np.isclose(np.exp(lp).sum(), 1.0)
    ref = torch.log_softmax(player.model(torch.from_numpy(encode(boards[5])[None])).double()[0], 0)
    from lab_transcendence.moves import legal_indices

    _, ix = legal_indices(boards[5])
    want = ref[ix] - torch.logsumexp(ref[ix], 0)
    assert np.allclose(many[5][1], want.detach().numpy(), atol=1e-5)  # the trained model's distribution

"""Merging and averaging algebra on hand-made tensors."""

import pytest
import torch

from lab_sfa.averaging import average_into, snapshot
from lab_sfa.merge import state_dicts
from lab_shared.errors import LabError


def _sd(w, b=None, n=3):
    return {"w": torch.tensor(w, dtype=torch.float32), "b": torch.tensor(b or [0.0]), "n": torch.tensor(n)}


def test_task_vector_and_ta_with_one_vector_reproduces_finetuned():
    base = _sd([1.0, 2.0, 3.0], [0.5], n=1)
    ft = _sd([0.0, 5.0, -1.0], [2.0], n=7)
    tau = state_dicts.task_vector(ft, base)
    assert torch.equal(tau["w"], torch.tensor([-1.0, 3.0, -4.0]))
    assert "n" not in tau  # integer buffers are not part of a task vector
    merged = state_dicts.task_arithmetic(base, [ft], lam=1.0)
    assert torch.allclose(merged["w"], ft["w"]) and torch.allclose(merged["b"], ft["b"])
    assert merged["n"].item() == 1  # non-float tensors come from the base


def test_task_arithmetic_sums_scaled_vectors():
    base = _sd([0.0, 0.0])
    out = state_dicts.task_arithmetic(base, [_sd([1.0, 2.0]), _sd([3.0, -2.0])], lam=0.5)
    assert torch.allclose(out["w"], torch.tensor([2.0, 0.0]))


def test_ties_trim_elect_disjoint_mean():
    base = {"w": torch.zeros(4)}
    t1 = {"w": torch.tensor([1.0, -2.0, 3.0, -4.0])}
    t2 = {"w": torch.tensor([1.0, 2.0, -3.0, 0.5])}
    t3 = {"w": torch.tensor([2.0, 0.1, 0.2, -1.0])}
    # k = 0.5: t1 keeps [0, 0, 3, -4]; t2 keeps [0, 2, -3, 0]; t3 keeps [2, 0, 0, -1].
    # elected signs (sum of kept): [+, +, 0, -]; disjoint means: [2, 2, 0, (-4 - 1) / 2].
    out = state_dicts.ties(base, [t1, t2, t3], k=0.5, lam=1.0)
    assert torch.allclose(out["w"], torch.tensor([2.0, 2.0, 0.0, -2.5]))
    out2 = state_dicts.ties(base, [t1, t2, t3], k=0.5, lam=2.0)
    assert torch.allclose(out2["w"], 2 * out["w"])


def test_ties_with_k_one_and_agreeing_signs_is_the_mean():
    base = {"w": torch.zeros(3)}
    out = state_dicts.ties(
        base, [{"w": torch.tensor([1.0, 2.0, 3.0])}, {"w": torch.tensor([3.0, 2.0, 1.0])}], k=1.0
    )
    assert torch.allclose(out["w"], torch.tensor([2.0, 2.0, 2.0]))


def test_wise_ft_interpolates():
    out = state_dicts.wise_ft(_sd([0.0, 4.0]), _sd([2.0, 0.0]), alpha=0.25)
    assert torch.allclose(out["w"], torch.tensor([0.5, 3.0]))


def test_mismatch_names_the_tensor():
    with pytest.raises(LabError, match="'w'"):
        state_dicts.wise_ft({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, 0.5)
    with pytest.raises(LabError, match="'b'"):
        state_dicts.task_arithmetic({"w": torch.zeros(2), "b": torch.zeros(1)}, [{"w": torch.zeros(2)}], 1.0)


def test_average_into_in_place():
    p = [torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.tensor([4.0])]
    anchor = snapshot([torch.tensor([3.0, 0.0]), torch.tensor([0.0])])
    ident = p[0]
    average_into(p, anchor, 0.25)
    assert p[0] is ident
    assert torch.allclose(p[0].data, torch.tensor([1.5, 1.5])) and torch.allclose(p[1], torch.tensor([3.0]))
    average_into(p, anchor, 1.0)
    assert torch.equal(p[0].data, anchor[0])

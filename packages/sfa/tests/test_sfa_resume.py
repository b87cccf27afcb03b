"""Exact state: a run resumed from any checkpoint ends bit-identical (SFA, L2, EWC on the core trainer)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from lab_sfa.methods.ewc import fisher_diagonal
from lab_sfa.methods.penalty import AnchorPenalty
from lab_sfa.methods.sfa import SFACallback
from lab_shared.rundir import RunDir
from lab_shared.trainer import Trainer, TrainerConfig


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))


def _shifted(model: nn.Module) -> None:
    """Move the start away from the init so that theta_o is not the init (as after a previous task)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3)


def _fit(make_callbacks, run: RunDir, resume=None) -> nn.Module:
    model = _model()
    _shifted(model)
    cfg = TrainerConfig(
        max_steps=30, batch_size=16, lr=1e-2, ckpt_every=5, keep_checkpoints=10, progress=False
    )
    Trainer(model, _loss, _data(), cfg, callbacks=make_callbacks(model), run_dir=run).fit(resume=resume)
    return model


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _check_resume(make_callbacks, tmp_path) -> RunDir:
    run = RunDir.create("resume-test", "full", root=tmp_path)
    full = _fit(make_callbacks, run)
    steps = sorted((run.path / "checkpoints").glob("step-*"))
    assert len(steps) == 6
    for ck in steps[:-1]:  # resume from every intermediate checkpoint, with fresh callbacks
        other = RunDir.create("resume-test", "resumed", root=tmp_path)
        resumed = _fit(make_callbacks, other, resume=ck)
        assert _same(full, resumed), f"resume from {ck.name} differs"
    return run


def test_sfa_resume_bit_identical(tmp_path):
    # A fresh callback (no anchor) on resume: it must take theta_o from the checkpoint, not the resumed weights.
    _check_resume(lambda model: [SFACallback(beta=0.3, every=4)], tmp_path)


def test_sfa_anchor_in_checkpoint_as_safetensors(tmp_path):
    run = RunDir.create("resume-test", "ck", root=tmp_path)
    _fit(lambda model: [SFACallback(beta=0.3, every=4)], run)
    ck = sorted((run.path / "checkpoints").glob("step-*"))[-1]
    assert (ck / "state.safetensors").is_file()
    assert "__tensor__" in (ck / "state.json").read_text()
    assert not list(ck.glob("*.pt")) and not list(ck.glob("*.pkl"))


def test_l2_resume_bit_identical(tmp_path):
    def cbs(model):
        anchor = [p.detach().clone() for p in model.parameters()]
        return [AnchorPenalty([(anchor, None, 5.0)])]

    # Anchors taken from the model at construction would be the resumed weights: the checkpoint overrides them.
    _check_resume(cbs, tmp_path)


def test_ewc_resume_bit_identical(tmp_path):
    def cbs(model):
        anchor = [p.detach().clone() for p in model.parameters()]
        fisher = fisher_diagonal(model, _loss, _data(), n_samples=32, batch=4)
        return [AnchorPenalty([(anchor, fisher, 50.0)])]

    _check_resume(cbs, tmp_path)

"""SFA algebra through the core trainer, the L2 link, EWC's penalty and Fisher, reservoir sampling."""

import collections

import pytest
import torch
from torch import nn

from lab_sfa.merge import state_dicts
from lab_sfa.methods.ewc import fisher_diagonal
from lab_sfa.methods.l2 import lambda_eff
from lab_sfa.methods.penalty import AnchorPenalty
from lab_sfa.methods.replay import Reservoir
from lab_sfa.methods.sfa import SFACallback, averaging_interval
from lab_shared.data import TensorData
from lab_shared.trainer import Trainer, TrainerConfig


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] > 0).long()
    return TensorData(x, y)


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))


def _train(model, callbacks=(), steps=12, optimizer="adamw", lr=0.05):
    cfg = TrainerConfig(max_steps=steps, batch_size=8, lr=lr, lr_schedule="constant", progress=False, seed=3)
    cfg.optimizer = optimizer
    Trainer(model, _loss, _data(), cfg, callbacks=list(callbacks)).fit()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_sfa_beta0_is_sequential_finetuning():
    plain = _train(_model())
    avg = _train(_model(), [SFACallback(beta=0.0, every=3)])
    for k in plain:
        assert torch.equal(plain[k], avg[k])


def test_sfa_beta1_keeps_theta_o():
    m = _model()
    theta_o = {k: v.clone() for k, v in m.state_dict().items()}
    cb = SFACallback(beta=1.0, every=averaging_interval(0.25, 12))
    out = _train(m, [cb])
    for k in theta_o:
        assert torch.equal(out[k], theta_o[k])
    assert cb.n_averages == 4  # every 3 of 12 steps (the end coincides with step 12)


def test_sfa_p1_beta_half_equals_wise_ft_half():
    m = _model()
    theta_o = {k: v.clone() for k, v in m.state_dict().items()}
    theta_1 = _train(_model())  # plain fine-tune: same init, data order and steps
    out = _train(m, [SFACallback(beta=0.5, every=averaging_interval(1.0, 12))])
    wise = state_dicts.wise_ft(theta_o, theta_1, alpha=0.5)
    for k in wise:
        assert torch.allclose(out[k], wise[k], atol=1e-6)


def test_sfa_reset_optimizer_and_listeners():
    calls = []
    m = _model()
    cb = SFACallback(beta=0.3, every=4, reset_optimizer=True, listeners=[lambda tr: calls.append(tr.step)])
    cfg = TrainerConfig(max_steps=10, batch_size=8, lr=0.05, progress=False)
    tr = Trainer(m, _loss, _data(), cfg, callbacks=[cb])
    tr.fit()
    assert calls == [4, 8, 10]
    assert len(tr.optimizer.state) == 0  # reset right after the last averaging


def test_l2_penalty_step_equals_sgd_step_then_average():
    """One SGD step on L + (lam/2)|theta - theta_o|^2 == plain step, then average with beta = lr * lam."""
    lr, lam = 0.1, 2.0
    torch.manual_seed(1)
    anchor = [torch.randn_like(p) for p in _model().parameters()]
    beta = lr * lam
    # theta0 - lr*(g + lam*(theta0 - a)) = (theta0 - lr*g) + beta*(a - theta0)
    m3, m4 = _model(), _model()
    start = [p.detach().clone() for p in m3.parameters()]
    _train(m3, [AnchorPenalty([(anchor, None, lam)])], steps=1, optimizer="sgd", lr=lr)
    _train(m4, steps=1, optimizer="sgd", lr=lr)
    for p3, p4, a, s in zip(m3.parameters(), m4.parameters(), anchor, start):
        assert torch.allclose(p3, p4 + beta * (a - s), atol=1e-6)
    assert lambda_eff(beta, 1.0, lr, 1) == pytest.approx(-torch.log(torch.tensor(1 - beta)).item() / lr)


def test_ewc_penalty_zero_at_anchor_and_fisher_nonnegative():
    m = _model()
    fisher = fisher_diagonal(
        m,
        _loss,
        _data(),
        n_samples=20,
        batch=1,
        collate_fn=lambda items: tuple(torch.stack(t) for t in zip(*items)),
    )
    assert all((f >= 0).all() for f in fisher) and any((f > 0).any() for f in fisher)
    anchor = [p.detach().clone() for p in m.parameters()]
    pen = AnchorPenalty([(anchor, fisher, 1000.0)])
    for p in m.parameters():
        p.grad = torch.zeros_like(p)

    class T:  # the trainer attributes the penalty reads
        model, step, config = m, 0, TrainerConfig(log_every=1)

        @staticmethod
        def lr():
            return 0.01

    pen.on_before_optimizer_step(T)
    assert pen.last_penalty == 0.0
    assert all(torch.allclose(p.grad, torch.zeros_like(p), atol=1e-6) for p in m.parameters())
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    pen.on_before_optimizer_step(T)
    assert pen.last_penalty > 0


def test_ewc_weights_are_capped_against_divergence():
    m = _model()
    anchor = [p.detach().clone() + 1.0 for p in m.parameters()]
    pen = AnchorPenalty([(anchor, [torch.full_like(p, 1e3) for p in m.parameters()], 1e3)])
    for p in m.parameters():
        p.grad = torch.zeros_like(p)

    class T:
        model, step, config = m, 0, TrainerConfig(log_every=1)

        @staticmethod
        def lr():
            return 0.01

    pen.on_before_optimizer_step(T)
    assert pen.capped_fraction == 1.0
    for p in m.parameters():  # gradient at most (1 / lr) * |diff| = 100
        assert torch.allclose(p.grad, torch.full_like(p, -100.0))


def test_reservoir_keeps_a_uniform_sample():
    counts = collections.Counter()
    trials, n, cap = 400, 200, 20
    for t in range(trials):
        r = Reservoir(cap, seed=t)
        for i in range(n):
            r.add(i)
        assert len(r) == cap and r.seen == n
        counts.update(r.items)
    expected = trials * cap / n  # 40 per item
    # Early, middle and late items are all kept at the same rate (a FIFO or a prefix would fail this).
    for lo, hi in ((0, 50), (75, 125), (150, 200)):
        rate = sum(counts[i] for i in range(lo, hi)) / (hi - lo)
        assert abs(rate - expected) < 0.15 * expected
    chi2 = sum((counts[i] - expected) ** 2 / expected for i in range(n))
    assert chi2 < 300  # df = 199; p ~ 1e-5 beyond this


def test_wise_ft_method_matches_the_merge_function():
    from lab_sfa.methods.base import MethodConfig
    from lab_sfa.methods.wise_ft import WiseFT

    m = _model()
    method = WiseFT(MethodConfig(name="wise_ft", alpha=0.3), None, {})
    method.before_task(m, 0)
    theta0 = {k: v.clone() for k, v in m.state_dict().items()}
    theta1 = _train(m)
    method.after_task(m, 0)
    expected = state_dicts.wise_ft(theta0, theta1, 0.3)
    for k, v in m.state_dict().items():
        assert torch.allclose(v, expected[k], atol=1e-6)

"""The trainer: learns, resumes bit-for-bit, rejects corrupt checkpoints, calls callbacks in order."""

import shutil

import pytest
import torch
from torch import nn

from lab_shared.callbacks import Callback
from lab_shared.checkpoint import find_checkpoint
from lab_shared.data import TensorData
from lab_shared.errors import LabError
from lab_shared.rundir import RunDir
from lab_shared.trainer import Trainer, TrainerConfig, lr_at


def make_problem(seed=0, n=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    return TensorData(x, y)


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def cfg(**kw):
    base = dict(
        max_steps=40, batch_size=16, lr=1e-2, warmup_steps=5, log_every=5, progress=False, grad_clip=1.0
    )
    base.update(kw)
    return TrainerConfig(**base)


def test_loss_goes_down(tmp_path):
    data = make_problem()
    model = make_model()
    run = RunDir.create("test", root=tmp_path)
    trainer = Trainer(model, loss_fn, data, cfg(max_steps=80), run_dir=run)
    out = trainer.fit()
    from lab_shared.metrics import read_metrics

    losses = [r["loss"] for r in read_metrics(run.path / "metrics.jsonl") if "loss" in r]
    assert out["step"] == 80 and losses[-1] < 0.6 * losses[0]
    assert (run.checkpoints / "latest").is_file()


class Counter(Callback):
    def __init__(self):
        self.events, self.n = [], 0

    def on_train_start(self, t):
        self.events.append("start")

    def on_before_optimizer_step(self, t):
        assert all(p.grad is not None for p in t.model.parameters())

    def on_after_optimizer_step(self, t):
        self.n += 1

    def on_train_end(self, t):
        self.events.append("end")

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, s):
        self.n = s["n"]


def test_resume_is_bit_for_bit(tmp_path):
    data = make_problem()
    # uninterrupted: 40 steps; ckpt every 10 (spans several epochs: 256/16 = 16 batches each)
    ref = make_model()
    Trainer(ref, loss_fn, data, cfg(ckpt_every=10), run_dir=RunDir.create("a", root=tmp_path)).fit()
    # interrupted at 25 (stop after the step), then resumed from the step-20 checkpoint in a fresh process state
    run = RunDir.create("b", root=tmp_path)
    m1, cb1 = make_model(), Counter()

    class Stop(Callback):
        def on_after_optimizer_step(self, t):
            if t.step == 25:
                t.should_stop = True

    Trainer(m1, loss_fn, data, cfg(ckpt_every=10), run_dir=run, callbacks=[cb1, Stop()]).fit()
    shutil.rmtree(run.checkpoints / "step-00000025")  # as if killed before the end-of-run save
    (run.checkpoints / "latest").write_text("step-00000020\n")
    torch.manual_seed(123)  # a different process would have different global RNG
    m2, cb2 = make_model(seed=99), Counter()
    Trainer(m2, loss_fn, data, cfg(ckpt_every=10), run_dir=run, callbacks=[cb2]).fit(resume="auto")
    assert cb2.n == 40  # restored 20 from the checkpoint, then 20 more
    for a, b in zip(ref.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_checkpoint_is_one_error_and_untouched(tmp_path):
    data = make_problem()
    run = RunDir.create("c", root=tmp_path)
    Trainer(make_model(), loss_fn, data, cfg(max_steps=10), run_dir=run).fit()
    ck = find_checkpoint(run.path)
    model_file = ck / "model.safetensors"
    blob = model_file.read_bytes()
    model_file.write_bytes(blob[:100])
    before = {p.name: p.read_bytes() for p in ck.iterdir()}
    with pytest.raises(LabError, match="corrupt"):
        Trainer(make_model(), loss_fn, data, cfg(max_steps=20), run_dir=run).fit(resume="auto")
    assert {p.name: p.read_bytes() for p in ck.iterdir()} == before
    (ck / "state.json").write_text('{"step": 1')
    with pytest.raises(LabError, match="corrupt JSON"):
        Trainer(make_model(), loss_fn, data, cfg(max_steps=20), run_dir=run).fit(resume=ck)


def test_grad_accum_matches_big_batch():
    data = make_problem()
    a, b = make_model(), make_model()
    a.eval(), b.eval()

    def nodrop_loss(model, batch):
        model.eval()  # no dropout: compare the math only
        return loss_fn(model, batch)

    Trainer(a, nodrop_loss, data, cfg(batch_size=32, grad_accum=1, shuffle=False, max_steps=5)).fit()
    Trainer(b, nodrop_loss, data, cfg(batch_size=16, grad_accum=2, shuffle=False, max_steps=5)).fit()
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.allclose(x, y, atol=1e-6)


def test_lr_schedule_and_bad_config():
    c = TrainerConfig(max_steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(100, c) == pytest.approx(0.1)
    with pytest.raises(LabError, match="optimizer"):
        Trainer(make_model(), loss_fn, make_problem(), TrainerConfig(optimizer="lion"))
    with pytest.raises(LabError, match="fewer than one batch"):
        Trainer(make_model(), loss_fn, make_problem(n=4), TrainerConfig(batch_size=8))

"""The transformers.Trainer callbacks: SFA averages at the right steps with the right weights; L2/EWC pull."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from lab_sfa.hf import ANCHOR_FILE, EWCCallback, L2Callback, SFACallback, estimate_fisher  # noqa: E402
from lab_sfa.lm.models import make_model  # noqa: E402


class Blocks(torch.utils.data.Dataset):
    def __init__(self, n=64, length=32, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 256, (n, length), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


class Probe(TrainerCallback):
    """Records trainable weights at each step end (before or after SFA, by its place in the list)."""

    def __init__(self):
        self.seen = {}

    def on_step_end(self, args, state, control, model=None, **kw):
        self.seen[state.global_step] = [p.detach().clone() for p in model.parameters() if p.requires_grad]


def _args(tmp_path, steps, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-2,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
        lr_scheduler_type="constant", dataloader_num_workers=0,
    )  # fmt: skip
    base.update(kw)
    return TrainingArguments(**base)


def _model():
    torch.manual_seed(0)
    return make_model("tiny")


def test_sfa_averages_every_p_T_steps_with_the_right_weights(tmp_path):
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    before, after = Probe(), Probe()
    sfa = SFACallback(beta=0.25, p=0.25)
    trainer = Trainer(
        model=model, args=_args(tmp_path, 8), train_dataset=Blocks(), callbacks=[before, sfa, after]
    )
    trainer.train()
    assert sfa.interval == 2
    assert sfa.events == [2, 4, 6, 8]  # every p*T steps; the last one is the task's end, not repeated
    for step in (1, 3, 5, 7):  # no averaging in between: the probes agree
        assert all(torch.equal(a, b) for a, b in zip(before.seen[step], after.seen[step]))
    for step in sfa.events:
        for pre, post, anchor in zip(before.seen[step], after.seen[step], start):
            torch.testing.assert_close(post, 0.75 * pre + 0.25 * anchor)
        assert not all(torch.equal(a, b) for a, b in zip(before.seen[step], after.seen[step]))


def test_sfa_averages_at_the_end_when_T_is_not_a_multiple(tmp_path):
    sfa = SFACallback(beta=0.5, every=3)
    Trainer(model=_model(), args=_args(tmp_path, 7), train_dataset=Blocks(), callbacks=[sfa]).train()
    assert sfa.events == [3, 6, 7]


def test_sfa_beta_one_keeps_the_anchor_and_p_one_is_end_only(tmp_path):
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    sfa = SFACallback(beta=1.0, p=1.0)
    Trainer(model=model, args=_args(tmp_path, 5), train_dataset=Blocks(), callbacks=[sfa]).train()
    assert sfa.events == [5]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), start))


def test_sfa_anchor_is_the_previous_tasks_end_and_optimizer_reset(tmp_path):
    model = _model()
    Trainer(model=model, args=_args(tmp_path, 3), train_dataset=Blocks(seed=1)).train()
    end_task1 = [p.detach().clone() for p in model.parameters()]
    sfa = SFACallback(beta=0.5, p=0.5, reset_optimizer=True)
    trainer = Trainer(model=model, args=_args(tmp_path, 4), train_dataset=Blocks(seed=2), callbacks=[sfa])
    trainer.train()
    assert all(torch.equal(a, b) for a, b in zip(sfa.anchor, end_task1))
    assert sfa.events == [2, 4]
    assert len(trainer.optimizer.state) == 0  # cleared after the last averaging


def test_sfa_anchor_survives_resume(tmp_path):
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    args = _args(tmp_path, 4, save_strategy="steps", save_steps=2)
    Trainer(model=model, args=args, train_dataset=Blocks(), callbacks=[SFACallback(beta=0.5, p=0.5)]).train()
    assert (tmp_path / "out" / "checkpoint-2" / ANCHOR_FILE).is_file()
    other = _model()
    with torch.no_grad():  # a different starting point: a naive snapshot would be wrong
        for p in other.parameters():
            p.add_(1.0)
    sfa = SFACallback(beta=0.5, p=0.5)
    Trainer(model=other, args=args, train_dataset=Blocks(), callbacks=[sfa]).train(
        resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2")
    )
    assert all(torch.equal(a, b) for a, b in zip(sfa.anchor, start))
    assert sfa.events == [4]


def test_l2_and_ewc_pull_toward_the_anchor(tmp_path):
    drift = {}
    for name, cb in [("plain", None), ("l2", L2Callback(lam=50.0))]:
        model = _model()
        start = [p.detach().clone() for p in model.parameters()]
        Trainer(model=model, args=_args(tmp_path, 6, optim="sgd", learning_rate=0.01), train_dataset=Blocks(),
                callbacks=[cb] if cb else []).train()  # fmt: skip
        drift[name] = sum((p.detach() - s).pow(2).sum().item() for p, s in zip(model.parameters(), start))
    assert drift["l2"] < 0.9 * drift["plain"]

    model = _model()
    loader = torch.utils.data.DataLoader(Blocks(n=8), batch_size=1)
    fisher = estimate_fisher(model, loader, max_batches=8)
    assert len(fisher) == len(list(model.parameters())) and all((f >= 0).all() for f in fisher)
    assert sum(f.sum().item() for f in fisher) > 0
    ewc = EWCCallback(fisher, lam=1e4, max_weight=10.0)
    Trainer(
        model=model, args=_args(tmp_path, 2, optim="sgd"), train_dataset=Blocks(), callbacks=[ewc]
    ).train()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_arguments():
    with pytest.raises(ValueError):
        SFACallback(beta=1.5)
    with pytest.raises(ValueError):
        SFACallback(p=0.0)


def _resume_case(tmp_path, make_cb, name):
    """Full run vs resumed from each checkpoint (copied elsewhere, fresh model and callback): bit-identical."""
    import shutil

    from safetensors.torch import load_file

    args = _args(tmp_path / name, 8, save_strategy="steps", save_steps=2, save_total_limit=None)
    model = _model()
    Trainer(model=model, args=args, train_dataset=Blocks(), callbacks=[make_cb(model)]).train()
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    last = load_file(str(tmp_path / name / "out" / "checkpoint-8" / "model.safetensors"))
    assert all(torch.equal(last[n], final[n]) for n in last)  # the final save is the averaged model
    for step in (2, 4, 6):
        moved = tmp_path / name / f"elsewhere-{step}"
        shutil.copytree(tmp_path / name / "out" / f"checkpoint-{step}", moved)
        other = _model()
        with torch.no_grad():  # a different starting point: a naive snapshot would be wrong
            for p in other.parameters():
                p.add_(1.0)
        args2 = _args(tmp_path / name / f"resumed-{step}", 8, save_strategy="no")
        Trainer(model=other, args=args2, train_dataset=Blocks(), callbacks=[make_cb(other)]).train(
            resume_from_checkpoint=str(moved)
        )
        for n, p in other.named_parameters():
            assert torch.equal(p, final[n]), f"{name}: resume from checkpoint-{step} differs in {n}"


def test_sfa_resume_is_bit_identical_from_any_checkpoint(tmp_path):
    _resume_case(tmp_path, lambda m: SFACallback(beta=0.5, p=0.25), "sfa")


def test_l2_and_ewc_resume_is_bit_identical(tmp_path):
    _resume_case(tmp_path, lambda m: L2Callback(lam=5.0), "l2")
    fisher = estimate_fisher(_model(), torch.utils.data.DataLoader(Blocks(n=4), batch_size=1), max_batches=4)
    _resume_case(
        tmp_path, lambda m: EWCCallback([f.clone() for f in fisher], lam=100.0, max_weight=10.0), "ewc"
    )


def test_resume_without_the_anchor_file_is_an_error(tmp_path):
    args = _args(tmp_path, 4, save_strategy="steps", save_steps=2)
    Trainer(model=_model(), args=args, train_dataset=Blocks()).train()  # checkpoints without SFA state
    with pytest.raises(ValueError, match=ANCHOR_FILE):
        Trainer(model=_model(), args=args, train_dataset=Blocks(), callbacks=[SFACallback()]).train(
            resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2")
        )

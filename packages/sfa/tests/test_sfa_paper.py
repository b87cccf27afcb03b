"""Paper-regime sequences, per-task replay buffers and content-keyed caches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lab_sfa.images.paper import N_OUTPUTS, PAPER, PAPER_LONG, split_pools, task_order
from lab_sfa.methods.base import MethodConfig, make_method
from lab_sfa.sequences import SequenceConfig, get_sequence
from lab_sfa.task_loop import RunConfig, run_continual
from lab_shared.errors import LabError
from lab_shared.trainer import TrainerConfig


def _rows(x: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.asarray(x)}


@pytest.mark.parametrize("base", ["digits", "mnist"])
def test_pretraining_pool_is_disjoint_from_the_task_pool(base):
    (xp, yp, xte, _), (xt, yt, xte2, _) = split_pools(base, data_seed=0)
    assert len(xp) and len(xt)
    assert not (_rows(xp) & _rows(xt))  # no training example is shared
    assert not (_rows(xp) & _rows(xte)) and xte is xte2  # tests never trained on, the same for both
    assert yp.min() >= 10 and yt.max() < N_OUTPUTS  # digits live in labels 10..19 of the shared head


def test_paper_sequences_cover_every_domain_and_reorder_the_same_data():
    cfg = SequenceConfig(name="paper", model="mlp", width=2, n_train=50, n_val=20, n_test=40, n_pretrain=500)
    seq = get_sequence("paper", cfg)
    assert [t.name for t in seq.tasks] == ["fmnist", "mnist", "fmnist-rot90", "mnist-rot90", "digits"]
    assert set(seq.info["pretrain_domains"]) == {t.name for t in seq.tasks}  # pretraining covers every task
    assert len(seq.pretrain.train) == 500
    pre = _rows(seq.pretrain.train.x.numpy())
    for t in seq.tasks:  # pretraining examples are disjoint from every task's examples
        assert not (pre & _rows(t.train.x.numpy())) and not (pre & _rows(t.val.x.numpy()))
    rev = get_sequence("paper", SequenceConfig(**{**cfg.__dict__, "order": 1}))
    assert [t.name for t in rev.tasks] == [t.name for t in seq.tasks][::-1]
    assert [t.index for t in rev.tasks] == list(range(5))
    same = {t.name: t for t in seq.tasks}
    for t in rev.tasks:
        assert torch.equal(t.train.x, same[t.name].train.x) and torch.equal(t.test.y, same[t.name].test.y)
    assert torch.equal(rev.pretrain.train.x, seq.pretrain.train.x)
    out = seq.make_model()(seq.tasks[0].test.x[:3], None)
    assert out.shape == (3, N_OUTPUTS)


def test_paper_long_has_ten_tasks_and_orders_are_permutations():
    assert len(PAPER) == 5 and len(PAPER_LONG) == 10 and len(set(PAPER_LONG)) == 10
    for order in range(4):
        assert sorted(task_order(10, order)) == list(range(10))
    assert task_order(10, 2) != task_order(10, 0)
    with pytest.raises(LabError):
        task_order(5, -1)


class _Tiny:
    def __init__(self, n):
        self.tasks = [
            type("T", (), {"train": [(torch.zeros(2), i % 2, 0) for i in range(n)]})() for _ in range(3)
        ]
        self.collate_fn = None


def test_replay_per_task_keeps_a_fraction_of_each_task():
    seq = _Tiny(200)
    m = make_method(MethodConfig(name="replay", buffer_size=0.05, buffer_mode="per_task"), seq, {})
    sizes = []
    for k in range(3):
        m.after_task(None, k)
        sizes.append(m.stored_examples())
    assert sizes == [10, 20, 30]
    total = make_method(MethodConfig(name="replay", buffer_size=0.05), seq, {})
    for k in range(3):
        total.after_task(None, k)
    assert total.stored_examples() == 10  # one reservoir of 5% of a task, in total
    with pytest.raises(LabError, match="buffer_mode"):
        make_method(MethodConfig(name="replay", buffer_mode="ring"), seq, {})


def _npz(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 60)
    x = rng.uniform(0, 1, (60, 12, 12)).astype(np.float32)
    x[np.arange(60), y * 3, y * 3] = 5.0
    np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])


def test_caches_are_keyed_by_the_data_not_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    _npz(tmp_path / "pre.npz", 0)
    _npz(tmp_path / "a.npz", 1)
    toml = tmp_path / "seq.toml"
    toml.write_text('image_size = 12\n[pretrain]\nnpz = "pre.npz"\n[[tasks]]\nname = "a"\nnpz = "a.npz"\n')
    cfg = RunConfig(
        sequence=SequenceConfig(name=str(toml), width=2, n_train=30, n_test=20, n_val=5, n_pretrain=30),
        method=MethodConfig(name="task_arithmetic", lam=1.0),
        trainer=TrainerConfig(max_steps=3, batch_size=8, progress=False, log_every=1),
        pretrain_steps=3,
        curves=False,
    )
    cache = tmp_path / "runs" / "sfa" / "cache"
    first = run_continual(cfg)
    files = set(cache.glob("*.safetensors"))
    assert {f.name.split("-")[0] for f in files} == {"pretrain", "finetune"}
    again = run_continual(cfg)
    assert set(cache.glob("*.safetensors")) == files and again["pretrain"]["cached"]
    assert again["R"] == first["R"]
    _npz(tmp_path / "a.npz", 2)  # the task file's data changes under the same path: a new fine-tune
    run_continual(cfg)
    new = set(cache.glob("*.safetensors")) - files
    assert [f.name.split("-")[0] for f in new] == ["finetune"]
    _npz(tmp_path / "pre.npz", 3)  # new pretraining data: a new pretrained model (and fine-tune)
    res = run_continual(cfg)
    assert not res["pretrain"]["cached"]


def test_line_from_each_task_start_to_its_end(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    for name, seed in (("pre", 0), ("a", 1), ("b", 2)):
        _npz(tmp_path / f"{name}.npz", seed)
    toml = tmp_path / "seq.toml"
    toml.write_text(
        'image_size = 12\n[pretrain]\nnpz = "pre.npz"\n'
        '[[tasks]]\nname = "a"\nnpz = "a.npz"\n[[tasks]]\nname = "b"\nnpz = "b.npz"\n'
    )
    cfg = RunConfig(
        sequence=SequenceConfig(name=str(toml), width=2, n_train=30, n_test=20, n_val=5, n_pretrain=30),
        method=MethodConfig(name="seq"),
        trainer=TrainerConfig(max_steps=4, batch_size=8, progress=False, log_every=2),
        pretrain_steps=3,
        curves=False,
        curve_samples=0,
        barrier_points=3,
    )
    res = run_continual(cfg)
    b = res["barrier"]
    assert [x["task"] for x in b] == [0, 1] and b[0]["alpha"] == [0.0, 0.5, 1.0]
    assert b[0]["acc"][0] == res["r0"][:1]  # a = 0: the model the task started from
    for k in range(2):  # a = 1: the model after the task, on the tasks seen so far
        assert b[k]["acc"][-1] == res["R"][k][: k + 1]
        assert all(v is not None for v in b[k]["loss"][1])
    with pytest.raises(LabError, match="barrier_points"):
        run_continual(RunConfig(barrier_points=1))


def test_image_task_file_rejects_unknown_keys(tmp_path):
    _npz(tmp_path / "a.npz", 1)
    for text, key in [
        ('image_size = 12\n[[tasks]]\nname = "a"\nnpz = "a.npz"\ntrasnform = "rot90"\n', "trasnform"),
        ('image_size = 12\nheads = "multi"\n[[tasks]]\nname = "a"\nnpz = "a.npz"\n', "heads"),
    ]:
        toml = tmp_path / "seq.toml"
        toml.write_text(text)
        with pytest.raises(LabError, match=key) as e:
            get_sequence(str(toml), SequenceConfig(name=str(toml)))
        assert "\n" not in str(e.value)

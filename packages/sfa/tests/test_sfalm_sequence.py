"""The lm-domains sequence: built-in and user-declared text domains, every method through the runner, CLI."""

from __future__ import annotations

import json
import os

import pytest
import torch

from lab_sfa.sequences import SequenceConfig, get_sequence
from lab_shared.errors import LabError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))


def _taskfile(tmp_path, extra_task=""):
    for name, word in [("recipes", "bake"), ("poems", "moon")]:
        folder = tmp_path / name
        folder.mkdir()
        for f in range(3):
            paras = [
                f"The {word} line {f}-{i}: {word}s and more {word}s, number {i * 13 + f}." for i in range(60)
            ]
            (folder / f"{f}.txt").write_text("\n\n".join(paras + [f"Shared {word} footer for all files."]))
    toml = tmp_path / "seq.toml"
    toml.write_text(
        'kind = "text"\npreset = "tiny"\npretrain_steps = 0\nn_train = 16\nn_test = 4\nn_val = 0\nn_math_eval = 6\n'
        '[[tasks]]\nname = "math"\n'
        '[[tasks]]\nname = "recipes"\npaths = ["recipes"]\n'
        '[[tasks]]\nname = "poems"\npaths = ["poems/*.txt"]\n' + extra_task
    )
    return toml


def test_text_taskfile_builds_and_evaluates(tmp_path):
    seq = get_sequence(str(_taskfile(tmp_path)), SequenceConfig())
    assert [t.name for t in seq.tasks] == ["math", "recipes", "poems"] and seq.metric == "score"
    assert seq.tasks[1].info["stats"]["duplicates_removed"] == 2  # the shared footer is kept once
    a, b = seq.make_model(), seq.make_model()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    for task in seq.tasks:
        assert len(task.train) == 16 and len(task.test) == 4 and task.train[0]["input_ids"].shape == (64,)
        m = seq.evaluate(a, task)
        assert m["loss"] > 0 and 0 <= m["score"] <= 1 and ("exact_match" in m) == (task.name == "math")
    assert seq.loss_fn(a, {"input_ids": seq.tasks[0].train.blocks[:2]}).ndim == 0


def test_builtin_lm_domains_on_machine_text(tmp_path):
    from lab_sfa.lm.sequence import LMOptions, build_lm_sequence

    opts = LMOptions(
        preset="tiny", n_train=8, n_test=2, n_val=2, n_math_eval=4, pretrain_steps=2, pretrain_blocks=40
    )
    seq = build_lm_sequence(opts)
    assert [t.name for t in seq.tasks] == ["math", "law", "code"]
    law, code = seq.tasks[1].info["stats"], seq.tasks[2].info["stats"]
    assert law["duplicates_removed"] > 0 and law["test_paragraphs"] > 0 and code["train_paragraphs"] > 0
    assert seq.info["pretrain"]["steps"] == 2 and len(seq.info["general_test"]) == 2
    assert any((tmp_path / "cache" / "sfa-lm").iterdir())  # the pretrained model is cached
    assert seq.evaluate(seq.make_model(), seq.tasks[0], "val")["exact_match"] >= 0


@pytest.mark.parametrize(
    "method", ["seq", "multitask", "replay", "l2", "ewc", "sfa", "task_arithmetic", "ties", "wise_ft"]
)
def test_every_method_runs_on_text_domains(tmp_path, method):
    from lab_sfa.methods.config import MethodConfig, pick_params
    from lab_sfa.task_loop import RunConfig, run_continual
    from lab_shared.trainer import TrainerConfig

    cfg = RunConfig(
        sequence=SequenceConfig(name=str(_taskfile(tmp_path))),
        method=MethodConfig(name=method, **pick_params(method, fisher_samples=4, buffer_size=4)),
        trainer=TrainerConfig(max_steps=2, batch_size=4, lr=1e-3, progress=False, lr_schedule="constant"),
        curves=False,
    )
    res = run_continual(cfg)
    assert len(res["R"]) == 3 and all(len(row) == 3 for row in res["R"])
    assert all(0.0 <= v <= 1.0 for row in res["R"] for v in row)


def test_cli_run_and_bad_input(tmp_path, lab_inproc, lab_subprocess):
    toml = _taskfile(tmp_path)
    r = lab_inproc("sfa", "run", "--sequence", str(toml), "--method", "sfa", "--steps", "2", "--set", "trainer.batch_size=4",
             "--set", "curves=false")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    results = list((tmp_path / "runs").rglob("results.json"))
    assert results and len(json.loads(results[0].read_text())["R"]) == 3

    r = lab_inproc("sfa", "run", "--sequence", "lm-domains", "--model", "bogus", "--steps", "1")
    assert r.returncode == 2 and "unknown LM preset 'bogus'" in r.stderr and r.stderr.count("\n") == 1

    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "b").mkdir()
    bad = _taskfile(tmp_path / "b", '[[tasks]]\nname = "empty"\npaths = ["../empty.txt"]\n')
    r = lab_subprocess("sfa", "run", "--sequence", str(bad), "--steps", "1")
    assert r.returncode == 2 and "is empty" in r.stderr and r.stderr.count("\n") == 1


def test_taskfile_errors(tmp_path):
    from lab_sfa.lm.taskfile import options_from_file

    bad = tmp_path / "bad.toml"
    for body, msg in [
        ('kind = "text"\ncolour = 1\n[[tasks]]\nname = "math"\n', "unknown key"),
        ('kind = "text"\n', "declare the domains"),
        ('kind = "text"\n[[tasks]]\nname = "nowhere"\n', "not a built-in"),
        ('kind = "text"\n[[tasks]]\nname = "math"\n[[tasks]]\nname = "math"\n', "unique"),
        ('kind = "text"\n[[tasks]]\nname = "x"\npaths = ["missing/"]\n', None),
        ('kind = "text"\n[[tasks', "malformed"),
    ]:
        bad.write_text(body)
        if msg is None:
            from lab_sfa.lm.sequence import build_lm_sequence

            with pytest.raises(LabError, match="does not exist"):
                build_lm_sequence(options_from_file(bad))
            continue
        with pytest.raises(LabError, match=msg):
            options_from_file(bad)

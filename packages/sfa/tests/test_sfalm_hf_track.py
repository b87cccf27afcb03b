"""The Hugging Face LM track: any causal-LM folder, JSONL tasks, every method, LoRA, the embedded model.

Models are tiny transformers configs saved in a tmp folder with a BPE tokenizer trained on the spot, so
nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

from lab_sfa.lm.embedded import train_tokenizer  # noqa: E402
from lab_sfa.lm.hf_eval import greedy_completions, normalize_answer  # noqa: E402
from lab_sfa.lm.records import IGNORE, Record, pack_records, read_jsonl, write_jsonl  # noqa: E402
from lab_sfa.sequences import get_sequence  # noqa: E402
from lab_sfa.tasktypes import SequenceConfig  # noqa: E402
from lab_shared.errors import LabError  # noqa: E402


def _math(n, off=0):
    return [Record(f"Q: {a} + {b} =", f" {a + b}") for a in range(off, off + n) for b in range(3)]


def _text(n):
    words = "the law says that code and math are licensed under terms of the agreement".split()
    return [Record(" ".join(words[(i + j) % len(words)] for j in range(8 + i % 5))) for i in range(n)]


def _rev(n):
    return [Record(f"reverse {w}:", " " + w[::-1]) for w in (f"ab{i}c" for i in range(n))]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny Llama causal LM + tokenizer saved as an ordinary Hugging Face folder."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    root = tmp_path_factory.mktemp("hf")
    texts = [r.prompt + (r.response or "") for r in _math(20) + _text(40) + _rev(30)]
    tok = train_tokenizer(texts, 300, root / "model")
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=32, max_position_embeddings=128, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(str(root / "model"))
    return root / "model"


@pytest.fixture(scope="module")
def task_file(hf_folder):
    """A `kind = "lm"` sequence of three JSONL tasks (prompt/response, text, prompt/response)."""
    root = hf_folder.parent / "tasks"
    write_jsonl(_math(12), root / "math_train.jsonl")
    write_jsonl(_math(4, off=40), root / "math_test.jsonl")
    write_jsonl(_text(60), root / "notes.jsonl")
    write_jsonl(_rev(40), root / "rev.jsonl")
    (root / "seq.toml").write_text(
        f'kind = "lm"\nmodel = "{hf_folder}"\nblock = 48\nn_em = 8\n'
        '[[tasks]]\nname = "math"\ntrain = "math_train.jsonl"\ntest = "math_test.jsonl"\n'
        '[[tasks]]\nname = "notes"\ntrain = "notes.jsonl"\ntest_fraction = 0.2\n'
        '[[tasks]]\nname = "rev"\ntrain = "rev.jsonl"\n'
    )
    return root / "seq.toml"


def _cfg(path, **kw):
    return SequenceConfig(name=str(path), n_train=12, n_test=4, n_val=0, **kw)


def _run(path, method, lora=0, steps=3, **params):
    from lab_sfa.task_loop import RunConfig, run_continual

    try:
        from lab_sfa.methods.config import MethodConfig
    except ImportError:
        from lab_sfa.methods.base import MethodConfig
    from lab_shared.trainer import TrainerConfig

    cfg = RunConfig(
        sequence=_cfg(path, lora_rank=lora), method=MethodConfig(name=method, **params),
        trainer=TrainerConfig(max_steps=steps, batch_size=4, lr=5e-3, lr_schedule="constant", progress=False,
                              log_every=steps, device="cpu"),
        curves=False, cache_pretrained=False,
    )  # fmt: skip
    return run_continual(cfg)


# ---------------------------------------------------------------- data


def test_jsonl_schema_errors_name_file_and_line(tmp_path):
    p = tmp_path / "t.jsonl"
    cases = [
        ('{"prompt": "a", "response": "b"}\n{"prompt": "a"\n', "t.jsonl:2: not valid JSON"),
        ('{"prompt": "a", "answer": "b"}\n', "t.jsonl:1: a record has keys"),
        ('{"text": "x"}\n\n{"prompt": "a", "response": "b"}\n', "t.jsonl:3: a prompt/response record"),
        ('{"text": 3}\n', "t.jsonl:1: 'text' must be a non-empty string"),
        ("[1, 2]\n", "t.jsonl:1: a record must be a JSON object"),
    ]
    for body, msg in cases:
        p.write_text(body)
        with pytest.raises(LabError, match=msg.replace("(", r"\(")):
            read_jsonl(p)
    with pytest.raises(LabError, match="not found"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_packing_masks_prompts_and_keeps_records_whole(hf_folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_folder))
    recs = _math(10)
    data = pack_records(tok, recs, block=24, seed=0)
    ids, labels, mask = data.blocks[:, 0], data.blocks[:, 1], data.blocks[:, 2]
    assert data.blocks.shape[1:] == (3, 24)
    eos = tok.eos_token_id
    firsts = {tok(r.prompt)["input_ids"][0] for r in recs}
    answers = [tok(r.response, add_special_tokens=False)["input_ids"] + [eos] for r in recs]
    for i in range(len(data)):
        assert (labels[i][mask[i] == 0] == IGNORE).all()  # padding is never trained on
        assert ids[i][0].item() in firsts  # every block starts with a whole record
        # the labelled tokens are whole responses, each ending in EOS (prompts are masked)
        lab = labels[i][labels[i] != IGNORE].tolist()
        assert lab and lab[-1] == eos
    assert int((labels != IGNORE).sum()) == sum(len(a) for a in answers)  # every record packed once


def test_exact_match_normalises_and_batching_does_not_change_answers(hf_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert normalize_answer(" 12\nQuestion", multiline=False) == "12"
    assert normalize_answer("a  b\n c ", multiline=True) == "a b c"
    tok = AutoTokenizer.from_pretrained(str(hf_folder))
    model = AutoModelForCausalLM.from_pretrained(str(hf_folder))
    prompts = ["Q: 1 + 2 =", "reverse ab3c:", "Q: 10 + 1 = and some longer prompt"]
    together = greedy_completions(model, tok, prompts, 5, batch_size=8)
    alone = [greedy_completions(model, tok, [p], 5)[0] for p in prompts]
    assert together == alone


# ---------------------------------------------------------------- the sequence and every method


def test_any_hf_folder_with_jsonl_tasks_builds_a_sequence(task_file):
    seq = get_sequence(str(task_file), _cfg(task_file))
    assert [t.name for t in seq.tasks] == ["math", "notes", "rev"]
    assert [t.info["kind"] for t in seq.tasks] == ["prompt", "text", "prompt"]
    m = seq.evaluate(seq.make_model(), seq.tasks[0])
    assert {"loss", "ppl", "token_acc", "exact_match", "score"} <= set(m) and m["score"] == m["exact_match"]
    m = seq.evaluate(seq.make_model(), seq.tasks[1])
    assert "exact_match" not in m and m["score"] == m["token_acc"] and m["loss"] > 0


@pytest.mark.parametrize(
    "method,params",
    [("seq", {}), ("sfa", {"beta": 0.5, "p": 0.5}), ("l2", {"lam": 1.0}), ("ewc", {"lam": 10.0}),
     ("replay", {"buffer_size": 0.25}), ("multitask", {}), ("task_arithmetic", {"lam": 0.5}), ("ties", {}),
     ("wise_ft", {})],
)  # fmt: skip
def test_every_method_runs_on_jsonl_tasks(task_file, method, params):
    res = _run(task_file, method, **params)
    assert res["tasks"] == ["math", "notes", "rev"]
    assert len(res["R"]) == 3 and all(len(r) == 3 for r in res["R"])
    assert all(0.0 <= v <= 1.0 for row in res["R"] for v in row)


def test_bad_model_and_bad_task_file_are_one_line_exit_2(task_file, tmp_path, lab_inproc):
    with pytest.raises(LabError, match="not a local folder and cannot be loaded"):
        get_sequence("lm", SequenceConfig(name="lm", model="no-such-org/no-such-model-xyz"))
    r = lab_inproc(
        "sfa", "run", "--sequence", "lm", "--model", "no-such-org/no-such-model-xyz", "--steps", "1"
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "'no-such-org/no-such-model-xyz' is not a local folder" in r.stderr
    bad = tmp_path / "bad.toml"
    (tmp_path / "b.jsonl").write_text('{"prompt": "a", "response": "b"}\n{"prompt": 1, "response": "b"}\n')
    bad.write_text('kind = "lm"\n[[tasks]]\nname = "b"\ntrain = "b.jsonl"\n')
    r = lab_inproc("sfa", "run", "--sequence", str(bad), "--method", "seq", "--steps", "1")
    assert r.returncode == 2 and "b.jsonl:2:" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad.write_text('kind = "lm"\nmodle = "x"\n[[tasks]]\nname = "b"\ntrain = "b.jsonl"\n')
    with pytest.raises(LabError, match=r"unknown key\(s\) \['modle'\]"):
        get_sequence(str(bad), _cfg(bad))


# ---------------------------------------------------------------- LoRA


def test_lora_sfa_averages_only_adapters_and_leaves_base_weights_unchanged(task_file):
    from lab_sfa.methods.sfa import SFACallback
    from lab_shared.trainer import Trainer, TrainerConfig

    seq = get_sequence(str(task_file), _cfg(task_file, lora_rank=2))
    steps = 4

    def train(callbacks):
        model = seq.make_model()
        cfg = TrainerConfig(max_steps=steps, batch_size=4, lr=5e-2, lr_schedule="constant", progress=False,
                            log_every=steps, device="cpu", seed=0)  # fmt: skip
        Trainer(model, seq.loss_fn, seq.tasks[0].train, cfg, callbacks=callbacks).fit()
        return model

    start = {k: v.clone() for k, v in seq.make_model().state_dict().items()}
    plain = train([])
    cb = SFACallback(beta=0.5, every=steps)  # one average at the task's end
    avg = train([cb])
    trainable = {n for n, p in avg.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # the anchor holds the adapters, plus the float buffers (rotary inv_freq) that `buffers="average"` includes
    buffers = [b for b in avg.buffers() if b.is_floating_point()]
    assert len(cb.anchor) == len(trainable) + len(buffers)
    for b, b0 in zip(buffers, [b for b in seq.make_model().buffers() if b.is_floating_point()]):
        assert torch.equal(b, b0)  # constant buffers: averaging them changes nothing
    sd_plain, sd_avg = plain.state_dict(), avg.state_dict()
    for name, v in sd_avg.items():
        if "lora_" in name:  # adapters: exactly half-way between theta_o (their init) and the trained adapter
            want = torch.lerp(sd_plain[name], start[name], 0.5)
            assert torch.allclose(v, want, atol=1e-6), name
        else:  # base weights are bit-identical to the pretrained ones
            assert torch.equal(v, start[name]), name
    assert any(not torch.equal(sd_plain[n], start[n]) for n in sd_plain if "lora_B" in n)


def test_lora_through_the_registry_counts_the_adapter_as_the_extra_copy(task_file):
    res = _run(task_file, "sfa", lora=2, beta=0.5, p=0.5)
    seq = get_sequence(str(task_file), _cfg(task_file, lora_rank=2))
    model = seq.make_model()
    n_adapter = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    n_buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    assert res["n_params"] == n_adapter  # only the adapters train
    assert res["max_extra_param_copies"] == pytest.approx((n_adapter + n_buffers) / n_adapter)


# ---------------------------------------------------------------- the embedded model


def test_embedded_model_is_cached_by_content_and_its_splits_are_disjoint(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lab_sfa.lm import embedded

    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    spec = replace(embedded.PRESETS["embedded-tiny"], steps=3)
    a = embedded.build_embedded(spec, device="cpu")
    stamp = (a / "model.safetensors").stat().st_mtime_ns
    assert embedded.build_embedded(spec, device="cpu") == a  # cache hit: not retrained
    assert (a / "model.safetensors").stat().st_mtime_ns == stamp
    b = embedded.build_embedded(replace(spec, lr=1e-3), device="cpu")  # other settings: other model
    assert b != a
    info = json.loads((a / "pretrain.json").read_text())
    assert info["train_s"] >= 0 and info["pretrain_tokens"] > 0  # 3 steps can round to 0.0 s
    tok = AutoTokenizer.from_pretrained(str(a))
    model = AutoModelForCausalLM.from_pretrained(str(a))
    assert model.config.vocab_size == len(tok)
    assert tok.decode(tok("What is 12 + 7?")["input_ids"]) == "What is 12 + 7?"
    for name, d in embedded.builtin_records(spec).items():
        keys = [{r.key() for r in part} for part in (d.pretrain, d.train, d.test)]
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2]), name
        if name != "general":
            assert d.pretrain and d.train and d.test


def test_lora_with_the_transformers_trainer_callback_keeps_only_adapters_as_theta_o(task_file, tmp_path):
    from safetensors.torch import load_file
    from transformers import Trainer, TrainingArguments

    from lab_sfa.hf import ANCHOR_FILE, SFACallback

    seq = get_sequence(str(task_file), _cfg(task_file, lora_rank=2))
    model = seq.make_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, learning_rate=5e-2,
        report_to=[], save_strategy="steps", save_steps=2, logging_strategy="no", use_cpu=True, seed=0,
        disable_tqdm=True, lr_scheduler_type="constant", dataloader_num_workers=0,
    )  # fmt: skip
    cb = SFACallback(beta=0.5, p=1.0)
    Trainer(model=model, args=args, train_dataset=seq.tasks[0].train, callbacks=[cb]).train()
    saved = load_file(str(tmp_path / "out" / "checkpoint-2" / ANCHOR_FILE))
    assert saved and all("lora_" in k for k in saved)
    for k, v in model.state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, start[k]), k
        else:
            assert torch.equal(saved[k], start[k]), k  # theta_o = the adapter when the task began

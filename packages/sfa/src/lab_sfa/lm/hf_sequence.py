"""The `lm` task sequence: any Hugging Face causal LM fine-tuned on a sequence of JSONL (or built-in) tasks.

Registered in `lab_sfa.sequences` as "lm"; `lab sfa run --sequence lm --method M` runs every method of the
package (through the same method registry as the image track) on Math -> Law -> Code with the embedded
model (`lab_sfa.lm.embedded`, pretrained here on first use). How the generic `SequenceConfig` is read:

- `model`: an embedded preset (embedded, embedded-tiny, embedded-gpu), a Hugging Face model folder, or a hub
  id (needs network; offline a missing id is one error line). The image defaults cnn / resnet mean embedded.
- `lora_rank`: > 0 trains LoRA adapters of that rank (peft) instead of every weight.
- `n_train` / `n_test` / `n_val`: packed blocks per task; left at the image defaults they become
  1000 / 32 / 16. `eval_batch_size` is capped at 32.

A task-sequence file with `kind = "lm"` (see `lab_sfa.lm.taskfile`) declares your own JSONL tasks. Every
evaluation returns `loss` (per labelled token), `ppl`, `token_acc` and, for prompt/response tasks,
`exact_match` of the greedy completion; `score` (the accuracy-matrix metric) is exact match for
prompt/response tasks and next-token accuracy for text tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lab_sfa.lm.records import Record, hash_split, pack_records, sft_loss
from lab_shared.errors import LabError

DEFAULT_TASKS = ("math", "law", "code")


@dataclass
class TaskSource:
    """A task's records: train and held-out (val is carved from train by the builder)."""

    name: str
    train: list[Record]
    test: list[Record]


@dataclass
class HFOptions:
    model: str = "embedded"
    tasks: list[TaskSource] = field(default_factory=list)  # empty = the built-in Math, Law, Code
    builtin: tuple[str, ...] = DEFAULT_TASKS  # used when tasks is empty
    lora_rank: int = 0
    block: int = 0  # tokens per block (0 = the embedded preset's, else min(context, 256))
    n_train: int = 1000
    n_test: int = 32
    n_val: int = 16
    n_em: int = 200  # held-out prompts scored by exact match per task
    order: int = 0  # task order: 0 = as listed, 1 = reversed, n >= 2 = a permutation seeded by n
    data_seed: int = 0
    eval_batch_size: int = 32
    device: str = "auto"


_LAST: list = []


def last_sequence():
    """The TaskSequence built last in this process (benchmarks read `info["eval_log"]`)."""
    return _LAST[-1] if _LAST else None


def options_from_config(cfg) -> HFOptions:
    from lab_sfa.tasktypes import SequenceConfig

    d = SequenceConfig()
    opts = HFOptions(
        model="embedded" if cfg.model in ("cnn", "resnet") else cfg.model,
        lora_rank=cfg.lora_rank, data_seed=cfg.data_seed, order=cfg.order,
        eval_batch_size=max(1, min(cfg.eval_batch_size, 32)),
    )  # fmt: skip
    for key in ("n_train", "n_test", "n_val"):
        if getattr(cfg, key) != getattr(d, key):
            setattr(opts, key, getattr(cfg, key))
    return opts


def build(cfg):
    """The registry entry point: `get_sequence("lm", cfg)`."""
    return build_hf_sequence(options_from_config(cfg))


def resolve_model(name: str, device: str = "auto") -> str:
    """A model folder or hub id for ``name`` (embedded presets are pretrained here on first use)."""
    from lab_sfa.lm.embedded import PRESETS, embedded_model

    if name in PRESETS:
        return str(embedded_model(name, device=device))
    from lab_sfa.lm.hf_model import check_model_name

    check_model_name(name)
    return name


def builtin_sources(names: tuple[str, ...], model: str) -> list[TaskSource]:
    """Math / Law / Code task records of the embedded mixture (disjoint from its pretraining data)."""
    from lab_sfa.lm.embedded import PRESETS, builtin_records

    spec = PRESETS.get(model, PRESETS["embedded"])
    data = builtin_records(spec)
    bad = [n for n in names if n not in ("math", "law", "code")]
    if bad:
        raise LabError(f"unknown built-in LM task {bad[0]!r} (built-in: math, law, code)")
    return [TaskSource(n, data[n].train, data[n].test) for n in names]


def build_hf_sequence(opts: HFOptions):
    """Load the model and tokenizer, pack every task's records, and assemble the TaskSequence."""
    from transformers import AutoModelForCausalLM

    from lab_sfa.lm.hf_eval import exact_match, token_metrics
    from lab_sfa.lm.hf_model import add_lora, context_of, load_causal_lm
    from lab_sfa.tasktypes import Task, TaskSequence

    if opts.lora_rank < 0:
        raise LabError(f"sequence.lora_rank must be >= 0, got {opts.lora_rank}")
    path = resolve_model(opts.model, opts.device)  # a bad model name fails before any data is read
    sources = opts.tasks or builtin_sources(opts.builtin, opts.model)
    if not sources:
        raise LabError("the LM sequence needs at least one task")
    if opts.order:
        from lab_sfa.images.paper import task_order

        sources = [sources[i] for i in task_order(len(sources), opts.order)]
    base, tok = load_causal_lm(path)
    ctx = context_of(base)
    if opts.block:
        block = opts.block
    else:
        from lab_sfa.lm.embedded import PRESETS

        block = PRESETS[opts.model].block if opts.model in PRESETS else min(ctx, 256)
    if block > ctx:
        raise LabError(f"block of {block} tokens is longer than the model's context ({ctx})")
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    config = base.config
    del base
    seed = opts.data_seed
    tasks = []
    for i, src in enumerate(sources):
        kind = "text" if all(r.is_text for r in src.train) else "prompt"
        if opts.n_val:
            train_recs, val_recs = hash_split(src.train, 0.1)
        else:
            train_recs, val_recs = src.train, []
        if not train_recs or not src.test or (opts.n_val and not val_recs):
            raise LabError(f"task {src.name!r}: too few records for train / held-out / validation splits")
        train = pack_records(tok, train_recs, block, opts.n_train, seed=seed, name=src.name)
        test = pack_records(tok, src.test, block, opts.n_test, seed=seed, name=src.name)
        val = pack_records(tok, val_recs, block, opts.n_val, seed=seed, name=src.name) if opts.n_val else None
        em = {"test": src.test[: opts.n_em], "val": val_recs[: opts.n_em]} if kind == "prompt" else {}
        info = {"kind": kind, "em": em, "train_records": len(train_recs), "test_records": len(src.test),
                "train_tokens": train.n_tokens, "test_tokens": test.n_tokens}  # fmt: skip
        tasks.append(Task(name=src.name, train=train, test=test, val=val, index=i, info=info))

    def make() -> torch.nn.Module:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
        model.load_state_dict(base_state)
        if opts.lora_rank:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 4242)  # the same adapter init in every call
                model = add_lora(model, opts.lora_rank)
        return model

    eval_log: list[tuple[str, str, dict]] = []

    def evaluate(model, task, split: str = "test") -> dict[str, float]:
        data = task.test if split == "test" else task.val
        if data is None:
            raise LabError(f"task {task.name!r} has no {split} split")
        out = token_metrics(model, data, opts.eval_batch_size)
        if task.info["kind"] == "prompt":
            out["exact_match"] = exact_match(model, tok, task.info["em"][split], opts.eval_batch_size)
            out["score"] = out["exact_match"]
        else:
            out["score"] = out["token_acc"]
        eval_log.append((task.name, split, out))
        return out

    seq = TaskSequence(
        name="lm", tasks=tasks, pretrain=None, make_model=make, loss_fn=sft_loss, evaluate=evaluate,
        metric="score", collate_fn=None,
        info={"model": opts.model, "model_path": path, "lora_rank": opts.lora_rank, "block": block,
              "tokenizer": tok, "eval_log": eval_log},
    )  # fmt: skip
    _LAST[:] = [seq]
    return seq

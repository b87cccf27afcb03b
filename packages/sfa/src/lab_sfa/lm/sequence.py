"""The `lm-domains` task sequence: a pretrained small causal LM fine-tuned on Math, Law, then Code.

Registered in `lab_sfa.sequences` as "lm-domains", so `lab sfa run --sequence lm-domains --method M` runs
every method of the package on it. How the generic `SequenceConfig` is read here:

- `model`: an LM preset name (tiny, tiny-gpt2, cpu, cpu-base, cpu-large, gpu-small, gpu); the image models
  "cnn" / "resnet" (the default) mean "cpu", any other name is an error.
- `n_train` / `n_test` / `n_val`: token blocks per task (train) and per domain (held-out, validation).
  Left at the image defaults (2000 / 1000 / 500), the LM uses 2000 / 128 / 64 blocks.
- `n_pretrain`: blocks of general text for pretraining; `data_seed`: seed of the splits, the math problems
  and the pretraining run (fixed across run seeds: every seed fine-tunes the same pretrained model).
- `eval_batch_size`: capped at 64 blocks.

Every task's `evaluate` gives held-out `loss`, `ppl`, `token_acc` and, for math, `exact_match`; `score`
(the matrix metric) is exact match for math and next-token accuracy for text domains, so higher is better
everywhere and the [sfa] ACC / forgetting summaries apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lab_sfa.lm.domains import DomainSpec, builtin_domains, load_domain
from lab_sfa.lm.mathgen import math_splits
from lab_sfa.lm.models import PRESETS, context_length
from lab_shared.errors import LabError

DEFAULT_ORDER = ("math", "law", "code")
# preset -> (pretraining steps, batch size in blocks, peak learning rate)
PRETRAIN = {
    "tiny": (30, 16, 2e-3), "tiny-gpt2": (30, 16, 2e-3), "cpu": (500, 16, 2e-3), "cpu-base": (800, 16, 2e-3),
    "cpu-large": (1500, 16, 1e-3), "gpu-small": (1000, 64, 1e-3), "gpu": (2500, 64, 6e-4),
}  # fmt: skip


@dataclass
class LMOptions:
    """Everything that shapes the LM sequence (see the module docstring for the SequenceConfig mapping)."""

    preset: str = "cpu"
    order: tuple[str, ...] = DEFAULT_ORDER  # domain names; "math" is the generated math domain
    n_train: int = 2000  # train blocks per task (0 = all the text read)
    n_test: int = 128  # held-out blocks per domain
    n_val: int = 64  # validation blocks per domain (0 = none)
    n_math_eval: int = 200  # held-out math problems scored by exact match
    math_max_value: int = -1  # -1 = by preset: 9 on the CPU presets (learnable in minutes), 30 on GPU ones
    math_kinds: tuple[str, ...] = ("add", "sub", "mul", "word")
    pretrain_steps: int = -1  # -1 = the preset's default
    pretrain_blocks: int = 10000
    max_bytes: int = (
        0  # per-domain text budget read from disk (0 = 7000 blocks' worth; pretraining 3x its blocks)
    )
    domains: dict[str, DomainSpec] = field(default_factory=dict)  # user-declared, override built-ins
    data_seed: int = 0
    eval_batch_size: int = 64
    device: str = "auto"


_LAST: list = []
_DOMAINS: dict = {}  # in-process memo of loaded domains (a table builds the same sequence many times)


def _load_domain_cached(spec: DomainSpec, seed: int, exclude: set[str] | None = None):
    key = (repr(spec), seed, hash(frozenset(exclude or ())))
    if key not in _DOMAINS:
        _DOMAINS.clear() if len(_DOMAINS) > 8 else None
        _DOMAINS[key] = load_domain(spec, seed=seed, exclude=exclude)
    return _DOMAINS[key]  # the most recently built sequence (benchmarks read its eval_log after a run)


def last_sequence():
    """The TaskSequence built last in this process (None before any), e.g. to read `info["eval_log"]`."""
    return _LAST[-1] if _LAST else None


def options_from_config(cfg) -> LMOptions:
    """Map the generic SequenceConfig onto LMOptions (image-default sizes get the LM defaults)."""
    from lab_sfa.tasktypes import SequenceConfig

    d = SequenceConfig()
    if cfg.model not in PRESETS and cfg.model not in ("cnn", "resnet"):  # image defaults mean "cpu"
        raise LabError(f"unknown LM preset {cfg.model!r} (choose from {', '.join(PRESETS)})")
    opts = LMOptions(preset=cfg.model if cfg.model in PRESETS else "cpu", data_seed=cfg.data_seed)
    if cfg.n_train != d.n_train:
        opts.n_train = cfg.n_train
    if cfg.n_test != d.n_test:
        opts.n_test = cfg.n_test
    if cfg.n_val != d.n_val:
        opts.n_val = cfg.n_val
    if cfg.n_pretrain != d.n_pretrain:
        opts.pretrain_blocks = cfg.n_pretrain
    opts.eval_batch_size = max(1, min(cfg.eval_batch_size, 64))
    return opts


def build(cfg) -> object:
    """The registry entry point: `get_sequence("lm-domains", cfg)`."""
    return build_lm_sequence(options_from_config(cfg))


def build_lm_sequence(opts: LMOptions):
    """Load the domains, pretrain (or reuse the cached) base model, and assemble the TaskSequence."""
    from lab_sfa.lm.data import lm_loss, pack_texts
    from lab_sfa.lm.evaluate import heldout_metrics, math_accuracy
    from lab_sfa.lm.models import make_model
    from lab_sfa.lm.pretrain import PretrainSpec, corpus_hash, load_pretrained, pretrain
    from lab_sfa.tasktypes import Task, TaskSequence

    if opts.preset not in PRESETS:
        raise LabError(f"unknown LM preset {opts.preset!r} (choose from {', '.join(PRESETS)})")
    if not opts.order:
        raise LabError("the LM sequence needs at least one domain")
    block = context_length(opts.preset)
    specs = {**builtin_domains(), **opts.domains}
    # Read only what the blocks need (reading and hashing megabytes costs seconds). The budget depends on the
    # preset only, so the pretraining corpus (and its cache key) does not change with n_train / n_test.
    budget = opts.max_bytes or 7000 * block
    pre_budget = opts.max_bytes or max(300_000, 3 * block * (opts.pretrain_blocks or 10_000))
    seed = opts.data_seed
    max_value = (
        opts.math_max_value if opts.math_max_value > 0 else (30 if opts.preset.startswith("gpu") else 9)
    )
    tasks, used_hashes = [], set()
    for i, name in enumerate(opts.order):
        info: dict = {"kind": "math" if name == "math" and name not in opts.domains else "text"}
        if info["kind"] == "math":
            n_problems = opts.n_train * block // 40 + 1 if opts.n_train else 20000
            train_p, test_p = math_splits(
                n_problems, opts.n_math_eval + max(opts.n_test, opts.n_val) * block // 40 + 1,
                seed=seed, max_value=max_value, kinds=tuple(opts.math_kinds),
            )  # fmt: skip
            n_val_p = max(1, opts.n_math_eval // 2) if opts.n_val else 0
            val_p, train_p = train_p[:n_val_p], train_p[n_val_p:]
            train_texts, test_texts, val_texts = (
                [p.text for p in train_p],
                [p.text for p in test_p],
                [p.text for p in val_p],
            )
            info["problems"] = {"test": test_p[: opts.n_math_eval], "val": val_p}
        else:
            if name not in specs:
                raise LabError(
                    f"unknown text domain {name!r} (built-in: math, {', '.join(builtin_domains())})"
                )
            spec = specs[name]
            spec = replace(spec, max_bytes=min(spec.max_bytes, budget))
            text = _load_domain_cached(spec, seed)
            used_hashes |= text.all_hashes()
            n_val_para = max(1, len(text.train) // 20) if opts.n_val else 0
            val_texts, train_texts, test_texts = text.train[:n_val_para], text.train[n_val_para:], text.test
            info["stats"] = text.stats
        train = pack_texts(train_texts, block, opts.n_train, seed=seed, name=name)
        test = pack_texts(test_texts, block, opts.n_test, seed=seed, name=name)
        val = pack_texts(val_texts, block, opts.n_val, seed=seed, name=name) if opts.n_val else None
        info.update(train_tokens=train.n_tokens, test_tokens=test.n_tokens)
        tasks.append(Task(name=name, train=train, test=test, val=val, index=i, info=info))

    default_steps, pre_batch, pre_lr = PRETRAIN[opts.preset]
    steps = opts.pretrain_steps if opts.pretrain_steps >= 0 else default_steps
    general_test, pspec, gen_stats = None, None, {}
    from lab_shared.seed import get_rng_state, set_rng_state

    rng = get_rng_state()  # pretraining must not shift the run's random streams (cold vs warm cache)
    try:
        if steps > 0:
            general = replace(specs["general"], max_bytes=min(specs["general"].max_bytes, pre_budget))
            gen = _load_domain_cached(general, seed, used_hashes)  # no fine-tuning paragraph leaks in
            pspec = PretrainSpec(
                preset=opts.preset, steps=steps, batch_size=pre_batch, lr=pre_lr, block_size=block, seed=seed,
                max_blocks=opts.pretrain_blocks,
                corpus_hash=corpus_hash(gen.train),
            )  # fmt: skip
            base_state = load_pretrained(pretrain(pspec, gen.train, device=opts.device)).state_dict()
            general_test = pack_texts(gen.test, block, opts.n_test, seed=seed, name="general")
            gen_stats = gen.stats
        else:  # no pretraining: a fixed random init
            import torch

            torch.manual_seed(seed)
            base_state = make_model(opts.preset).state_dict()
    finally:
        set_rng_state(*rng)
    eval_log: list[tuple[str, str, dict]] = []  # every evaluation, for tables beyond the matrix metric

    def make() -> object:
        model = make_model(opts.preset)
        model.load_state_dict(base_state)
        return model

    def evaluate(model, task, split: str = "test") -> dict[str, float]:
        blocks = task.test if split == "test" else task.val
        if blocks is None:
            raise LabError(f"task {task.name!r} has no {split} split")
        out = heldout_metrics(model, blocks, opts.eval_batch_size)
        if task.info.get("kind") == "math":
            out["exact_match"] = math_accuracy(model, task.info["problems"][split], opts.eval_batch_size)
            out["score"] = out["exact_match"]
        else:
            out["score"] = out["token_acc"]
        eval_log.append((task.name, split, out))
        return out

    seq = TaskSequence(
        name="lm-domains",
        tasks=tasks,
        pretrain=None,  # theta_pre is the pretrained LM that make_model() returns
        make_model=make,
        loss_fn=lm_loss,
        evaluate=evaluate,
        metric="score",
        collate_fn=None,
        info={
            "preset": opts.preset, "block_size": block, "pretrain": vars(pspec) if pspec else None,
            "general_test": general_test, "general_stats": gen_stats, "eval_log": eval_log, "options": {k: v for k, v in vars(opts).items() if k != "domains"},
        },
    )  # fmt: skip
    _LAST[:] = [seq]
    return seq

"""The embedded default model: a small Llama-style causal LM pretrained here on a Math + Law + Code mixture.

The paper fine-tunes a pretrained LLM (Pythia) whose pretraining covered math, law and code. Nothing can be
downloaded here, so the same situation is built on the machine:

- data (``builtin_records``): Math = generated problems (prompt "Question: ...\\nAnswer:", response the
  number); Law = /usr/share/common-licenses and Debian copyright files; Code = the Python standard library;
  plus general docs text. Every math question, law and code paragraph lands in exactly one of pretraining /
  task training / task held-out (split by content hash), so pretraining covers each domain with examples
  disjoint from the tasks'.
- tokenizer: a byte-level BPE (digits split one by one) trained on the pretraining text, saved as a
  ``PreTrainedTokenizerFast``;
- model: a transformers ``LlamaConfig`` preset, trained with the core trainer on the mixture.

The result is an ordinary Hugging Face folder (``AutoModelForCausalLM`` + ``AutoTokenizer``) cached in
``$LAB_CACHE/sfa-lm/embedded-<key>/``; the key hashes the pretraining blocks' token ids, the tokenizer's
vocabulary, the model config and the training settings, so edited data or settings never reuse a stale
model. ``pretrain.json`` in the folder records the wall time and losses.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from lab_sfa.fingerprint import dataset_fingerprint, settings_key
from lab_sfa.lm.records import Record, SFTBlocks, pack_records, sft_loss
from lab_shared.errors import LabError
from lab_shared.io import temp_dir
from lab_shared.logs import get_logger

log = get_logger("lab_sfa.lm")
_VERSION = 1  # bump when the recipe changes


@dataclass
class EmbeddedSpec:
    """What shapes the embedded model (all of it enters the cache key)."""

    name: str = "embedded"
    vocab_size: int = 2048
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 352
    context: int = 256
    block: int = 128  # tokens per training block
    steps: int = 600
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0
    math_max_value: int = 9
    budget_bytes: int = 1_200_000  # text read from disk per domain (general: 2x)
    pretrain_share: float = 0.5  # of each text domain's training paragraphs, the share kept for pretraining


PRESETS: dict[str, EmbeddedSpec] = {
    "embedded": EmbeddedSpec(),
    "embedded-tiny": EmbeddedSpec(
        name="embedded-tiny",
        vocab_size=512,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        context=128,
        block=64,
        steps=20,
        batch_size=8,
        budget_bytes=60_000,
    ),  # fmt: skip  (tests)
    "embedded-gpu": EmbeddedSpec(
        name="embedded-gpu",
        vocab_size=8192,
        hidden_size=512,
        num_layers=8,
        num_heads=8,
        intermediate_size=1408,
        context=1024,
        block=512,
        steps=3000,
        batch_size=32,
        lr=1e-3,
        math_max_value=30,
        budget_bytes=8_000_000,
    ),  # fmt: skip
}


def cache_root() -> Path:
    return Path(os.environ.get("LAB_CACHE") or Path.home() / ".cache" / "lab") / "sfa-lm"


# ---------------------------------------------------------------- data


@dataclass
class DomainRecords:
    """One domain's records: for pretraining, task training and task held-out (disjoint)."""

    name: str
    pretrain: list[Record]
    train: list[Record]
    test: list[Record]


_MEMO: dict = {}


def builtin_records(spec: EmbeddedSpec, n_math: int = 6000) -> dict[str, DomainRecords]:
    """math / law / code / general, each split three ways by content hash (memoised per process)."""
    key = (spec.math_max_value, spec.budget_bytes, spec.seed, spec.pretrain_share, n_math)
    if key in _MEMO:
        return _MEMO[key]
    from lab_sfa.lm.domains import builtin_domains, load_domain
    from lab_sfa.lm.mathgen import math_splits

    seed = spec.seed
    train_p, test_p = math_splits(n_math, n_math // 4, seed=seed, max_value=spec.math_max_value)
    math = [Record(p.prompt, " " + p.answer) for p in train_p]
    out = {"math": _three_way("math", math, [Record(p.prompt, " " + p.answer) for p in test_p], spec)}
    specs = builtin_domains()
    used: set[str] = set()
    for name in ("law", "code"):
        d = load_domain(replace(specs[name], max_bytes=spec.budget_bytes), seed=seed)
        used |= d.all_hashes()
        out[name] = _three_way(name, [Record(t) for t in d.train], [Record(t) for t in d.test], spec)
    gen = load_domain(replace(specs["general"], max_bytes=2 * spec.budget_bytes), seed=seed, exclude=used)
    out["general"] = DomainRecords(
        "general", [Record(t) for t in gen.train], [], [Record(t) for t in gen.test]
    )
    _MEMO.clear()
    _MEMO[key] = out
    return out


def _three_way(name: str, train: list[Record], test: list[Record], spec: EmbeddedSpec) -> DomainRecords:
    """Training records split by hash into pretraining and task training; held-out records stay held out."""
    pre, task = [], []
    for r in train:
        (pre if int(r.key()[8:16], 16) % 10_000 < spec.pretrain_share * 10_000 else task).append(r)
    return DomainRecords(name, pre, task, test)


def _as_text(records: list[Record]) -> list[Record]:
    return [r if r.is_text else Record(r.prompt + r.response) for r in records]


# ---------------------------------------------------------------- tokenizer and model


def train_tokenizer(texts: list[str], vocab_size: int, out: Path):
    """A byte-level BPE (digits one token each) as a PreTrainedTokenizerFast saved in ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<bos>", "<eos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    fast.save_pretrained(str(out))
    return fast


def make_config(spec: EmbeddedSpec, tok):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size, max_position_embeddings=spec.context,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, rms_norm_eps=1e-5,
    )  # fmt: skip


def random_model(path: str | Path, seed: int):
    """A freshly initialised model with the architecture of the folder ``path`` (the from-scratch baseline)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path)), attn_implementation="sdpa")


def pretrain_mixture(spec: EmbeddedSpec, tok, data: dict[str, DomainRecords]) -> SFTBlocks:
    """Blocks of the pretraining mixture: every domain's pretraining records (math as plain text), shuffled."""
    parts = []
    for name in ("general", "math", "law", "code"):
        recs = _as_text(data[name].pretrain)
        if recs:
            parts.append(pack_records(tok, recs, spec.block, seed=spec.seed, name=f"pretrain-{name}").blocks)
    blocks = torch.cat(parts)
    g = torch.Generator().manual_seed(spec.seed)
    return SFTBlocks(blocks[torch.randperm(len(blocks), generator=g)], "pretrain")


def embedded_model(preset: str = "embedded", device: str = "auto", progress: bool = False) -> Path:
    """The folder of the embedded model ``preset``: pretrained on first use, then read from the cache."""
    if preset not in PRESETS:
        raise LabError(f"unknown embedded model {preset!r} (choose from {', '.join(PRESETS)})")
    spec = PRESETS[preset]
    return build_embedded(spec, device=device, progress=progress)


def build_embedded(spec: EmbeddedSpec, device: str = "auto", progress: bool = False) -> Path:
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    t0 = time.perf_counter()
    cache_root().mkdir(parents=True, exist_ok=True)
    data = builtin_records(spec)
    texts = [r.prompt if r.is_text else r.prompt + r.response for n in data for r in data[n].pretrain]
    tok_key = settings_key(settings_key(*texts), spec.vocab_size, _VERSION)
    tok_dir = cache_root() / f"tokenizer-{tok_key}"
    if (tok_dir / "tokenizer.json").is_file():
        tok = PreTrainedTokenizerFast.from_pretrained(str(tok_dir))
    else:
        tmp = temp_dir(cache_root(), prefix=".tmp-tok.")
        try:
            train_tokenizer(texts, spec.vocab_size, tmp)
            _publish(tmp, tok_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        tok = PreTrainedTokenizerFast.from_pretrained(str(tok_dir))
    mix = pretrain_mixture(spec, tok, data)
    key = settings_key(dataset_fingerprint(mix), tok_key, asdict(spec), _VERSION)
    out = cache_root() / f"{spec.name}-{key}"
    if (out / "model.safetensors").is_file():
        return out
    from lab_shared.seed import get_rng_state, seed_everything, set_rng_state
    from lab_shared.trainer import Trainer, TrainerConfig

    rng = get_rng_state()  # a cold cache must not shift the calling run's random streams
    try:
        seed_everything(spec.seed)
        model = AutoModelForCausalLM.from_config(make_config(spec, tok), attn_implementation="sdpa")
        cfg = TrainerConfig(
            max_steps=spec.steps, batch_size=spec.batch_size, lr=spec.lr, min_lr=spec.lr / 10,
            warmup_steps=max(1, spec.steps // 20), weight_decay=0.1, beta2=0.95, grad_clip=1.0, seed=spec.seed,
            device=device, log_every=max(1, spec.steps // 10), progress=progress,
        )  # fmt: skip
        n_params = sum(p.numel() for p in model.parameters())
        log.info("pretraining %s (%.2fM params) for %d steps on %d blocks", spec.name, n_params / 1e6,
                 spec.steps, len(mix))  # fmt: skip
        t1 = time.perf_counter()
        result = Trainer(model, sft_loss, mix, cfg, log_prefix="pretrain/").fit()
        train_s = time.perf_counter() - t1
    finally:
        set_rng_state(*rng)
    tmp = temp_dir(cache_root(), prefix=f".tmp-{out.name}.")
    try:
        model.to("cpu").save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        info = {
            "spec": asdict(spec), "key": key, "n_params": n_params, "pretrain_blocks": len(mix),
            "pretrain_tokens": int(mix.blocks[:, 2].sum()), "train_s": round(train_s, 1),
            "total_s": round(time.perf_counter() - t0, 1), "torch_threads": torch.get_num_threads(),
            "result": result,
            "records": {n: [len(d.pretrain), len(d.train), len(d.test)] for n, d in data.items()},
        }  # fmt: skip
        (tmp / "pretrain.json").write_text(json.dumps(info, indent=2, default=str))
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _publish(tmp: Path, out: Path) -> None:
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished first: keep theirs
        if not out.is_dir():
            raise

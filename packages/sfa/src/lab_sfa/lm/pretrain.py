"""Pretraining the small causal LM on general text found on the machine, cached on disk.

The paper starts from a pretrained LM (Pythia); nothing can be downloaded here, so theta_pre is made here:
the preset is trained on the `general` domain (docs READMEs, man pages, ...) with every paragraph of the
fine-tuning domains removed. The result is saved as a Hugging Face model folder under the cache
(`$LAB_CACHE` or ~/.cache/lab, then sfa-lm/<preset>-<hash>/), keyed by everything that shapes it, so all
methods and seeds of a table share one pretrained model, as the paper's runs share Pythia.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from lab_sfa.lm.data import lm_loss, pack_texts
from lab_sfa.lm.models import make_config, make_model
from lab_shared.errors import LabError
from lab_shared.io import temp_dir
from lab_shared.logs import get_logger

_VERSION = 1  # bump when the pretraining recipe changes, so old caches are not reused
log = get_logger("lab_sfa.lm")


@dataclass
class PretrainSpec:
    preset: str = "cpu"
    steps: int = 600
    batch_size: int = 16
    lr: float = 2e-3
    block_size: int = 128
    seed: int = 0
    max_blocks: int = 20000  # blocks of general text kept (0 = all)
    corpus_hash: str = ""  # hash of the paragraphs used (changes when the machine's text changes)


def cache_root() -> Path:
    return Path(os.environ.get("LAB_CACHE") or Path.home() / ".cache" / "lab") / "sfa-lm"


def cache_dir(spec: PretrainSpec) -> Path:
    key = hashlib.sha1(json.dumps({**asdict(spec), "v": _VERSION}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / f"{spec.preset}-{key}"


def corpus_hash(texts: list[str]) -> str:
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode("utf-8", errors="replace"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def load_pretrained(path: Path):
    """A causal LM from a saved folder (safetensors; nothing is downloaded)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(path), attn_implementation="sdpa", local_files_only=True
        )
    except (OSError, ValueError) as e:
        raise LabError(f"cannot load the model in {path}: {str(e).splitlines()[0]}") from None


def pretrain(spec: PretrainSpec, texts: list[str], device: str = "auto", progress: bool = True) -> Path:
    """Train the preset on `texts` for `spec.steps` steps unless a cached copy exists; return its folder."""
    out = cache_dir(spec)
    if (out / "model.safetensors").is_file():
        return out
    from lab_shared.seed import seed_everything
    from lab_shared.trainer import Trainer, TrainerConfig

    make_config(spec.preset)  # unknown preset -> LabError before any work
    seed_everything(spec.seed)
    data = pack_texts(texts, spec.block_size, spec.max_blocks, seed=spec.seed, name="general")
    model = make_model(spec.preset)
    cfg = TrainerConfig(
        max_steps=spec.steps, batch_size=min(spec.batch_size, len(data)), lr=spec.lr, min_lr=spec.lr / 10,
        warmup_steps=max(1, spec.steps // 20), weight_decay=0.1, beta2=0.95, grad_clip=1.0, seed=spec.seed,
        device=device, log_every=max(1, spec.steps // 5), progress=progress,
    )  # fmt: skip
    log.info(
        "pretraining LM preset %s for %d steps on %d blocks (cached in %s)",
        spec.preset,
        spec.steps,
        len(data),
        out,
    )
    result = Trainer(model, lm_loss, data, cfg, log_prefix="pretrain/").fit()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out.parent, prefix=f".tmp-{out.name}.")
    try:
        model.to("cpu").save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "pretrain.json").write_text(
            json.dumps({"spec": asdict(spec), "result": result}, indent=2, default=str)
        )
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first: keep theirs
            if not (out / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

"""Any Hugging Face causal LM as the model of a task sequence, optionally with LoRA adapters (peft).

``load_causal_lm(name)`` takes a local folder (config.json + weights + tokenizer files) or, when the user has
network, a hub id; with ``HF_HUB_OFFLINE=1`` (or no network) a missing id is one LabError line.
``add_lora(model, rank)`` wraps the model with peft adapters on every linear layer: only the adapters train,
so SFA, L2 and EWC (which act on the trainable parameters) average / pull the adapter weights only, and
theta_o is the adapter at the previous task's end.
"""

from __future__ import annotations

from pathlib import Path

from lab_shared.errors import LabError


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def load_tokenizer(name: str):
    """The model's tokenizer (AutoTokenizer); a pad token is set to EOS when the tokenizer has none."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, KeyError) as e:
        raise LabError(f"cannot load a tokenizer for model {name!r}: {_first_line(e)}") from None
    if tok.eos_token_id is None:
        raise LabError(f"the tokenizer of {name!r} has no EOS token (needed to end responses)")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def check_model_name(name: str) -> None:
    """A clear line when ``name`` is neither a model folder nor (offline) a cached hub id."""
    from transformers import AutoConfig

    p = Path(name).expanduser()
    if p.exists() and not (p / "config.json").is_file():
        raise LabError(f"model folder {name!r} has no config.json (need a Hugging Face causal-LM folder)")
    try:
        AutoConfig.from_pretrained(str(p) if p.exists() else name)
    except (OSError, ValueError, KeyError) as e:
        raise LabError(
            f"model {name!r} is not a local folder and cannot be loaded from the hub ({_first_line(e)})"
        ) from None


def load_causal_lm(name: str):
    """(model, tokenizer) of a causal-LM folder or hub id, fp32, nothing trained yet."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    check_model_name(name)
    name = str(Path(name).expanduser()) if Path(name).expanduser().exists() else name
    try:
        model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="sdpa", dtype="float32")
    except (OSError, ValueError, KeyError) as e:
        raise LabError(f"cannot load {name!r} as AutoModelForCausalLM: {_first_line(e)}") from None
    return model, load_tokenizer(name)


def context_of(model) -> int:
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return 1024


def add_lora(model, rank: int, alpha: float | None = None, dropout: float = 0.0):
    """Wrap ``model`` with LoRA adapters (rank ``rank``, scaling alpha / rank) on every linear layer."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise LabError("LoRA needs peft: pip install 'lab-sfa[lora]'") from None
    cfg = LoraConfig(
        r=rank, lora_alpha=alpha if alpha is not None else 2 * rank, lora_dropout=dropout,
        target_modules="all-linear", bias="none", task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, cfg)

"""Small causal LM presets built from transformers configs (nothing is downloaded).

Llama-style (RoPE, RMSNorm, SwiGLU) with tied input/output embeddings, over the byte vocabulary. The CPU
presets are a few hundred thousand to a few million parameters; the GPU presets go up to ~100M.
"""

from __future__ import annotations

from lab_sfa.lm.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE
from lab_shared.errors import LabError

# name -> (architecture, size kwargs, context length)
PRESETS: dict[str, tuple[str, dict, int]] = {
    "tiny": (
        "llama",
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
        64,
    ),
    "tiny-gpt2": ("gpt2", dict(n_embd=32, n_layer=2, n_head=2), 64),
    "cpu": (
        "llama",
        dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256),
        128,
    ),
    "cpu-base": (
        "llama",
        dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=352),
        128,
    ),
    "cpu-large": (
        "llama",
        dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=704),
        256,
    ),
    "gpu-small": (
        "llama",
        dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=1408),
        512,
    ),
    "gpu": (
        "llama",
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=2048),
        512,
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def context_length(preset: str) -> int:
    return _lookup(preset)[2]


def _lookup(preset: str) -> tuple[str, dict, int]:
    if preset not in PRESETS:
        raise LabError(f"unknown LM preset {preset!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[preset]


def make_config(preset: str):
    """The transformers config of a preset (byte vocabulary, tied embeddings)."""
    arch, size, ctx = _lookup(preset)
    common = dict(vocab_size=VOCAB_SIZE, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            **size, **common, num_key_value_heads=size["num_attention_heads"], max_position_embeddings=ctx,
            tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=10000.0,
        )  # fmt: skip
    from transformers import GPT2Config

    return GPT2Config(**size, **common, n_positions=ctx, tie_word_embeddings=True)


def make_model(preset: str):
    """A randomly initialised causal LM of the preset (eager/sdpa attention, fp32)."""
    from transformers import AutoModelForCausalLM

    cfg = make_config(preset)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    return model


def n_params(model) -> int:
    """Unique parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())

"""A lean GPT in the style of nanoGPT (the paper's own model is a nanoGPT fork).

Pre-LayerNorm blocks, fused QKV, `scaled_dot_product_attention` (flash kernels on GPU), GELU MLP, tied
input/output embeddings, optional biases (the paper runs without). The weights map one-to-one onto a Hugging
Face GPT-2 (see export.py), so a trained model also loads with `AutoModelForCausalLM`.

API:
- `GPT(config)(idx)` -> logits (B, T, V).
- `GPT(config)(idx, targets)` -> (logits, loss): mean cross entropy over targets != -1.
- Incremental decoding: `cache = model.new_cache(batch_size)`; then `model(idx_chunk, cache=cache)` returns
  the chunk's logits and appends its keys/values, positions continue from `cache.length`. Feed the prompt
  once, then one token at a time; `cache.truncate(n)` rewinds (e.g. to resample a move).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 32
    block_size: int = 1023  # context length (the paper: 1023 inputs from 1024-character blocks)
    n_layer: int = 16
    n_head: int = 8
    n_embd: int = 512
    dropout: float = 0.0
    bias: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        """Every size an integer in a sane range, checked before anything is allocated (LabError, one line
        naming the option). The caps keep a typo or a hostile config.json from allocating terabytes."""
        from lab_shared.errors import LabError

        for name, low, high in _SIZE_RANGES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise LabError(f"model {name} must be an integer, got {v!r}")
            if not low <= v <= high:
                raise LabError(
                    f"model {name} (--{name.replace('_', '-')}) must be in {low}..{high:,}, got {v:,}"
                )
        if self.n_embd % self.n_head:
            raise LabError(f"model n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, int | float)
            or not 0 <= self.dropout < 1
        ):
            raise LabError(f"model dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise LabError(f"model bias must be true or false, got {self.bias!r}")
        if self.approx_params() > MAX_PARAMS:
            raise LabError(
                f"model of ~{self.approx_params() / 1e9:.1f}B parameters exceeds the cap of {MAX_PARAMS / 1e9:.0f}B"
            )

    def approx_params(self) -> int:
        """Parameters of GPT(self) without building it (embeddings + 12 d^2 a layer)."""
        d = self.n_embd
        return (self.vocab_size + self.block_size) * d + self.n_layer * (12 * d * d + 4 * d) + 2 * d


# Sane maxima (the paper's model: vocab 32, context 1023, 16 layers, 8 heads, width 512).
_SIZE_RANGES = (
    ("vocab_size", 1, 1 << 20),
    ("block_size", 2, 1 << 16),
    ("n_layer", 1, 256),
    ("n_head", 1, 256),
    ("n_embd", 1, 1 << 14),
)
MAX_PARAMS = 4_000_000_000


# Model shapes by name. Vocab size comes from the tokenizer; block size may be overridden.
PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=127),
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=255),
    "50m": dict(n_layer=16, n_head=8, n_embd=512, block_size=1023),
    "300m": dict(n_layer=24, n_head=16, n_embd=1024, block_size=1023),
}


def preset_config(name: str, vocab_size: int, **overrides) -> GPTConfig:
    """A GPTConfig from a preset name (tiny | small | 50m | 300m) plus overrides."""
    if name not in PRESETS:
        from lab_shared.errors import LabError

        raise LabError(f"unknown model preset {name!r} (choose {', '.join(PRESETS)})")
    values = {**PRESETS[name], "vocab_size": vocab_size}
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = GPTConfig(**values)
    config.validate()
    return config


class KVCache:
    """Keys and values of past positions for every layer, preallocated to the model's context."""

    def __init__(self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int, device, dtype):
        shape = (batch, n_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.length = 0
        self.max_len = max_len

    def truncate(self, length: int) -> None:
        """Forget positions from `length` on (the stored values are simply overwritten later)."""
        self.length = max(0, min(length, self.length))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is None:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        else:
            start = cache.length
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            k_all = cache.k[layer][:, :, : start + T]
            v_all = cache.v[layer][:, :, : start + T]
            if T == 1:
                y = F.scaled_dot_product_attention(q, k_all, v_all)
            else:  # a chunk after a prefix: query i sees keys up to start + i
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied embeddings
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def new_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        """An empty KV cache for incremental decoding of up to `max_len` (default: block_size) positions."""
        c = self.config
        p = self.lm_head.weight
        return KVCache(
            c.n_layer, batch_size, c.n_head, max_len or c.block_size, c.n_embd // c.n_head, p.device, p.dtype
        )

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        """Logits (B, T, V); with targets, (logits, loss). With a cache, positions start at cache.length."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds the context of {self.config.block_size}"
            )
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.length = start + T
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def configure_optimizer(
        self, lr: float, weight_decay: float, betas: tuple[float, float], device_type: str
    ):
        """AdamW with weight decay on matrices only (nanoGPT's grouping); fused kernels on CUDA."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device_type == "cuda")

    def flops_per_token(self) -> float:
        """Training FLOPs per token by nanoGPT's formula (6N + 12 L H Q T)."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * c.block_size

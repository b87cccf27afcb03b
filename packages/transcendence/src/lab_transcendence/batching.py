"""Ragged batched forward passes over the GPT's weights, with a KV cache.

The games of a batch have prompts of different lengths. `prefill` left-pads them into one (B, L) batch and
gives every row its own positions (0..len-1) and a key mask hiding the padding, so each row computes exactly
what it would alone. `extend` then feeds further tokens against that cache, either one per row (sampling a
move token by token) or a packed chunk of many candidate continuations per row with a block-diagonal mask
(scoring every legal move in one pass without copying the prompt's cache per candidate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class RaggedCache:
    """Per-layer keys/values (B, H, P, D) of a left-padded prefix, its key mask (B, P) and row lengths (B,)."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    valid: torch.Tensor
    lengths: torch.Tensor

    def select(self, rows: torch.Tensor) -> RaggedCache:
        return RaggedCache(
            [k[rows] for k in self.k], [v[rows] for v in self.v], self.valid[rows], self.lengths[rows]
        )


def _layers(model):
    return model.transformer.h


def _run(model, idx: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, cache: RaggedCache | None):
    """Blocks over idx (B, S) at positions pos (B, S); mask (B, S, P+S) says which keys each query sees.

    Returns logits (B, S, V) and the chunk's own per-layer keys/values.
    """
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(pos)
    attn_mask = mask[:, None, :, :]  # broadcast over heads
    new_k, new_v = [], []
    for i, block in enumerate(_layers(model)):
        a = block.attn
        h = block.ln_1(x)
        B, S, C = h.shape
        q, k, v = a.c_attn(h).split(a.n_embd, dim=2)
        q = q.view(B, S, a.n_head, C // a.n_head).transpose(1, 2)
        k = k.view(B, S, a.n_head, C // a.n_head).transpose(1, 2)
        v = v.view(B, S, a.n_head, C // a.n_head).transpose(1, 2)
        new_k.append(k)
        new_v.append(v)
        if cache is not None:
            k = torch.cat([cache.k[i], k], dim=2)
            v = torch.cat([cache.v[i], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        y = y.transpose(1, 2).contiguous().view(B, S, C)
        x = x + a.c_proj(y)
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(tr.ln_f(x)), new_k, new_v


@torch.no_grad()
def prefill(model, prompts: list[list[int]], device) -> tuple[torch.Tensor, RaggedCache]:
    """Run left-padded prompts; return each row's last-position logits (B, V) and the cache."""
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    L = int(lengths.max())
    B = len(prompts)
    idx = torch.zeros(B, L, dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        idx[r, L - len(p) :] = torch.tensor(p, dtype=torch.long)
    pad = (L - lengths)[:, None]
    col = torch.arange(L, device=device)[None, :]
    valid = col >= pad  # (B, L) real tokens
    pos = (col - pad).clamp(min=0)
    causal = torch.ones(L, L, dtype=torch.bool, device=device).tril()
    mask = causal[None] & valid[:, None, :]
    mask = mask | torch.eye(L, dtype=torch.bool, device=device)[None]  # pad queries see themselves (no NaN)
    logits, k, v = _run(model, idx, pos, mask, None)
    return logits[:, -1, :].float(), RaggedCache(k, v, valid, lengths)


@torch.no_grad()
def extend(
    model, cache: RaggedCache, tokens: torch.Tensor, offsets: torch.Tensor, seen: torch.Tensor
) -> tuple[torch.Tensor, RaggedCache]:
    """Feed a chunk (B, S) after the cached prefix.

    offsets (B, S): each token's position after its row's prompt end (0 = first token after the prompt).
    seen (B, S, S): which chunk tokens each chunk token attends to (itself included); the prompt is always
    visible. Returns the chunk's logits (B, S, V) and the cache with the chunk appended (so token-by-token
    decoding can continue).
    """
    pos = cache.lengths[:, None] + offsets
    P = cache.valid.shape[1]
    mask = torch.cat([cache.valid[:, None, :].expand(-1, tokens.shape[1], P), seen], dim=2)
    logits, k, v = _run(model, tokens, pos, mask, cache)
    grown = RaggedCache(
        [torch.cat([a, b], dim=2) for a, b in zip(cache.k, k, strict=True)],
        [torch.cat([a, b], dim=2) for a, b in zip(cache.v, v, strict=True)],
        torch.cat([cache.valid, seen.diagonal(dim1=1, dim2=2)], dim=1),
        cache.lengths + tokens.shape[1],
    )
    return logits.float(), grown

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
    """Per-layer keys/values (B, H, capacity, D) of a left-padded prefix plus room for decoded tokens.

    `used` positions are filled; `valid` (B, capacity) marks real (non-padding) filled positions and
    `lengths` (B,) each row's token count (its next position id).
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    valid: torch.Tensor
    lengths: torch.Tensor
    used: int

    def select(self, rows: torch.Tensor) -> RaggedCache:
        return RaggedCache(
            [k[rows] for k in self.k],
            [v[rows] for v in self.v],
            self.valid[rows],
            self.lengths[rows],
            self.used,
        )


def _layers(model):
    return model.transformer.h


def _run(model, idx, pos, mask, cache: RaggedCache | None, append: bool):
    """Blocks over idx (B, S) at positions pos (B, S); mask (B, S, keys) says which keys each query sees.

    Without a cache the keys are the chunk itself and are returned (for a new cache). With a cache and
    append=True the chunk's keys/values are written in place after `cache.used`; with append=False they
    are only attended to (packed candidates). Returns logits (B, S, V) and the chunk's keys/values.
    """
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(pos)
    attn_mask = mask[:, None, :, :]  # broadcast over heads
    new_k, new_v = [], []
    S = idx.shape[1]
    for i, block in enumerate(_layers(model)):
        a = block.attn
        h = block.ln_1(x)
        B, _, C = h.shape
        q, k, v = a.c_attn(h).split(a.n_embd, dim=2)
        q = q.view(B, S, a.n_head, C // a.n_head).transpose(1, 2)
        k = k.view(B, S, a.n_head, C // a.n_head).transpose(1, 2)
        v = v.view(B, S, a.n_head, C // a.n_head).transpose(1, 2)
        if cache is None:
            new_k.append(k)
            new_v.append(v)
        elif append:
            u = cache.used
            cache.k[i][:, :, u : u + S] = k
            cache.v[i][:, :, u : u + S] = v
            k, v = cache.k[i][:, :, : u + S], cache.v[i][:, :, : u + S]
        else:
            u = cache.used
            k = torch.cat([cache.k[i][:, :, :u], k], dim=2)
            v = torch.cat([cache.v[i][:, :, :u], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        y = y.transpose(1, 2).contiguous().view(B, S, C)
        x = x + a.c_proj(y)
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(tr.ln_f(x)), new_k, new_v


@torch.no_grad()
def prefill(model, prompts: list[list[int]], device, extra: int = 0) -> tuple[torch.Tensor, RaggedCache]:
    """Run left-padded prompts; return each row's last-position logits (B, V) and the cache.

    `extra` reserves room in the cache for that many decoded tokens (appended without copies).
    """
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
    logits, k, v = _run(model, idx, pos, mask, None, False)
    if extra:
        k = [torch.cat([t, t.new_zeros(*t.shape[:2], extra, t.shape[3])], dim=2) for t in k]
        v = [torch.cat([t, t.new_zeros(*t.shape[:2], extra, t.shape[3])], dim=2) for t in v]
        valid = torch.cat([valid, valid.new_zeros(B, extra)], dim=1)
    return logits[:, -1, :].float(), RaggedCache(k, v, valid, lengths, L)


@torch.no_grad()
def extend(
    model,
    cache: RaggedCache,
    tokens: torch.Tensor,
    offsets: torch.Tensor,
    seen: torch.Tensor,
    append: bool = False,
    chunk_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feed a chunk (B, S) after the cached prefix; returns the chunk's logits (B, S, V).

    offsets (B, S): each token's position after its row's prompt end (0 = first token after the prompt).
    seen (B, S, S): which chunk tokens each chunk token attends to (itself included); the cached prefix is
    always visible. append=True stores the chunk in the cache (the cache needs room, see prefill's
    `extra`); chunk_valid (B, S) then marks the chunk's real tokens (default: all). append=False leaves the
    cache unchanged (packed candidates).
    """
    S = tokens.shape[1]
    u = cache.used
    pos = cache.lengths[:, None] + offsets
    mask = torch.cat([cache.valid[:, None, :u].expand(-1, S, u), seen], dim=2)
    logits, _, _ = _run(model, tokens, pos, mask, cache, append)
    if append:
        if chunk_valid is None:
            chunk_valid = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
        cache.valid[:, u : u + S] = chunk_valid
        cache.lengths = cache.lengths + chunk_valid.sum(dim=1)
        cache.used = u + S
    return logits.float()


class PromptCache:
    """Keys/values of each game's last prompt, so the game's next move runs only its new tokens.

    A game's prompt grows by a move or two between its turns (`;1.e4 e5 2.` -> `;1.e4 e5 2.Nf3 Nc6 3.`),
    so the stored prefix is reused and only the new characters go through the model. Games are evicted
    least-recently-used beyond `max_games`, or explicitly with `forget` when they end.
    """

    def __init__(self, max_games: int = 128):
        from collections import OrderedDict

        self.max_games = max_games
        self.store: OrderedDict = OrderedDict()  # key -> (ids, [k (H, n, D)], [v (H, n, D)])
        self.last_reuse: list[
            tuple[int, int]
        ] = []  # per row of the last call: (tokens reused, prompt length)

    def forget(self, key) -> None:
        self.store.pop(key, None)

    @torch.no_grad()
    def prefill(self, model, keys: list, prompts: list[list[int]], device, extra: int = 0):
        """Like `prefill`, reusing each game's stored prefix; stores the new prompts' keys/values."""
        B = len(prompts)
        reuse = []
        for key, p in zip(keys, prompts, strict=True):
            old = self.store.get(key)
            r = 0
            if old is not None:
                ids = old[0]
                n = min(len(ids), len(p) - 1)  # keep at least one new token to get the next logits
                while r < n and ids[r] == p[r]:
                    r += 1
            reuse.append(r)
        self.last_reuse = [(r, len(p)) for r, p in zip(reuse, prompts, strict=True)]
        blocks = model.transformer.h
        ref = model.lm_head.weight
        H = blocks[0].attn.n_head
        D = blocks[0].attn.n_embd // H
        P = max(reuse)
        news = [len(p) - r for p, r in zip(prompts, reuse, strict=True)]
        S = max(news)
        cap = P + S + extra
        ks = [ref.new_zeros(B, H, cap, D) for _ in blocks]
        vs = [ref.new_zeros(B, H, cap, D) for _ in blocks]
        valid = torch.zeros(B, cap, dtype=torch.bool, device=device)
        for b, (key, r) in enumerate(zip(keys, reuse, strict=True)):
            if r:
                _, ok, ov = self.store[key]
                for i in range(len(blocks)):
                    ks[i][b, :, P - r : P] = ok[i][:, :r]
                    vs[i][b, :, P - r : P] = ov[i][:, :r]
                valid[b, P - r : P] = True
        cache = RaggedCache(ks, vs, valid, torch.tensor(reuse, device=device), P)
        tokens = torch.zeros(B, S, dtype=torch.long)
        chunk_valid = torch.zeros(B, S, dtype=torch.bool)
        offsets = torch.zeros(B, S, dtype=torch.long)
        for b, (p, r, n) in enumerate(zip(prompts, reuse, news, strict=True)):
            tokens[b, S - n :] = torch.tensor(p[r:], dtype=torch.long)
            chunk_valid[b, S - n :] = True
            offsets[b, S - n :] = torch.arange(n)
        chunk_valid = chunk_valid.to(device)
        seen = torch.ones(S, S, dtype=torch.bool, device=device).tril()[None] & chunk_valid[:, None, :]
        seen = seen | torch.eye(S, dtype=torch.bool, device=device)[None]
        logits = extend(model, cache, tokens.to(device), offsets.to(device), seen, True, chunk_valid)
        for b, (key, p, r, n) in enumerate(zip(keys, prompts, reuse, news, strict=True)):
            lo, hi = P + S - n, P + S
            k = [torch.cat([ks[i][b, :, P - r : P], ks[i][b, :, lo:hi]], dim=1) for i in range(len(blocks))]
            v = [torch.cat([vs[i][b, :, P - r : P], vs[i][b, :, lo:hi]], dim=1) for i in range(len(blocks))]
            self.store[key] = (list(p), k, v)
            self.store.move_to_end(key)
        while len(self.store) > self.max_games:
            self.store.popitem(last=False)
        return logits[:, -1, :], cache

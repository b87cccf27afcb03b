"""The shape-free agent: masked self-attention over the queued queries' tokens (setfeatures.py).

Each queued query is one token (its relative features + the globals); a linear embedding, `layers`
pre-norm transformer encoder layers with the empty slots masked out of the attention, and a head giving one
score per token (PPO logits). The value is read from the masked mean and max of the tokens. Nothing
depends on the slot order (permutation-equivariant scores) or on the number of slots, tables or pages, so
one trained network schedules any workload, pool size and queue size. `SetAgentScheduler` runs it as a
`Scheduler` (argmax over the valid slots).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lab_learnsched.scheduler_base import SchedState, Scheduler
from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN, SetFeaturizer
from lab_shared.checkpoint import find_checkpoint, load_model_weights, read_checkpoint
from lab_shared.errors import LabError

NEG = -1e9


class Block(nn.Module):
    """Pre-norm self-attention + feed-forward over tokens; `bias` (B, 1, 1, S) masks empty slots (-1e9)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        if d % heads:
            raise ValueError(f"hidden size {d} is not divisible by {heads} heads")
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.Tanh(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) * (d // h) ** -0.5 + bias
        x = x + self.out((att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.n2(x))


class SetNet(nn.Module):
    def __init__(self, hidden: int = 32, layers: int = 2, heads: int = 2):
        super().__init__()
        self.hidden, self.layers, self.heads = hidden, layers, heads
        self.embed = nn.Sequential(
            nn.Linear(N_TOKEN + N_GLOBAL, hidden), nn.Tanh(), nn.Linear(hidden, hidden)
        )
        self.blocks = nn.ModuleList(Block(hidden, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.value_head = nn.Sequential(
            nn.Linear(2 * hidden + N_GLOBAL, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, N_GLOBAL + S * N_TOKEN) -> (masked scores (B, S), value (B,)); any S."""
        b = obs.shape[0]
        glob = obs[:, :N_GLOBAL]
        tok = obs[:, N_GLOBAL:].reshape(b, -1, N_TOKEN)
        valid = tok[..., 0] > 0.5
        # a row without any valid slot (never fed in practice) attends to slot 0 instead of giving NaN
        safe = valid.clone()
        safe[:, 0] |= ~valid.any(1)
        bias = torch.zeros(safe.shape, dtype=obs.dtype).masked_fill(~safe, NEG)[:, None, None, :]
        x = self.embed(torch.cat([tok, glob[:, None, :].expand(-1, tok.shape[1], -1)], dim=-1))
        for blk in self.blocks:
            x = blk(x, bias)
        x = self.norm(x)
        scores = self.head(x).squeeze(-1).masked_fill(~valid, NEG)
        w = valid.to(obs.dtype)[..., None]
        mean = (x * w).sum(1) / w.sum(1).clamp(min=1.0)
        mx = x.masked_fill(~valid[..., None], -1e4).max(1).values
        value = self.value_head(torch.cat([mean, mx, glob], dim=-1)).squeeze(-1)
        return scores, value


def setnet_meta(net: SetNet, **extra) -> dict:
    return {
        "agent": "setnet",
        "hidden": net.hidden,
        "layers": net.layers,
        "heads": net.heads,
        "tokens": N_TOKEN,
        "globals": N_GLOBAL,
        **extra,
    }


def setnet_from_meta(meta: dict) -> SetNet:
    if (meta.get("tokens"), meta.get("globals")) != (N_TOKEN, N_GLOBAL):
        raise LabError(
            f"setnet checkpoint has {meta.get('tokens')} token / {meta.get('globals')} global features; "
            f"this version computes {N_TOKEN} / {N_GLOBAL}: retrain it"
        )
    try:
        return SetNet(int(meta["hidden"]), int(meta["layers"]), int(meta["heads"]))
    except (KeyError, TypeError, ValueError):
        raise LabError("checkpoint has no valid setnet metadata") from None


class SetAgentScheduler(Scheduler):
    """Argmax decisions of a trained SetNet; fits every workload shape."""

    def __init__(self, net: SetNet, meta: dict):
        self.net = net.eval()
        self.meta = meta
        self.feat = SetFeaturizer()
        self.name = "agent:setnet"

    @classmethod
    def load(cls, path: str | Path) -> SetAgentScheduler:
        ck = find_checkpoint(path)
        state, _, _ = read_checkpoint(ck)
        meta = state.get("agent")
        if not isinstance(meta, dict) or meta.get("agent") != "setnet":
            raise LabError(f"{ck}: not a setnet agent checkpoint")
        net = setnet_from_meta(meta)
        load_model_weights(net, ck / "model.safetensors")
        return cls(net, meta)

    def fits(self, env) -> bool:
        return True

    @torch.no_grad()
    def choose(self, state: SchedState) -> int:
        valid = state.valid_slots()
        if not valid:
            raise LabError("scheduler asked to choose from an empty queue")
        if len(valid) == 1:
            return valid[0]
        obs = torch.from_numpy(self.feat.observe(state))[None]
        scores, _ = self.net(obs)
        return int(scores[0].argmax())

    def scores(self, states: list[SchedState]) -> np.ndarray:
        """Scores of several states at once (same queue size), for batched evaluation."""
        obs = torch.from_numpy(np.stack([self.feat.observe(s) for s in states]))
        with torch.no_grad():
            return self.net(obs)[0].numpy()

"""The agents' network: a per-slot scorer shared across queue slots (permutation-equivariant).

Each slot is encoded from its own query bitmap, that bitmap times the pool bitmap (which of its bins are
cached), its scalar features and the global features; a context vector encodes the pool bitmap; the mean
of the valid slots' encodings tells each slot what else is queued. A head maps
[slot, context, mean] to one score per slot (PPO: logits; DQN: Q-values); a value head maps
[context, mean] to V(s). Sharing weights across slots makes the policy independent of slot order.
"""

from __future__ import annotations

import torch
from torch import nn

from lab_learnsched.features import N_GLOBAL, ObsSpec

NEG = -1e9


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.Tanh(), nn.Linear(h, o), nn.Tanh())


class SlotNet(nn.Module):
    def __init__(self, spec: ObsSpec, hidden: int = 128):
        super().__init__()
        self.spec = spec
        bd, f = spec.bitmap_dim, spec.slot_dim - spec.bitmap_dim
        self.slot_enc = _mlp(2 * bd + f + N_GLOBAL, hidden, hidden)
        self.ctx_enc = _mlp(bd + N_GLOBAL, hidden, hidden)
        self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.value_head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def _encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        sp = self.spec
        bd = sp.bitmap_dim
        pool = obs[:, :bd]
        glob = obs[:, bd : bd + N_GLOBAL]
        slots = obs[:, bd + N_GLOBAL :].reshape(obs.shape[0], sp.queue_size, sp.slot_dim)
        sb, sf = slots[..., :bd], slots[..., bd:]
        valid = sf[..., 0] > 0.5
        g = glob[:, None, :].expand(-1, sp.queue_size, -1)
        e = self.slot_enc(torch.cat([sb, sb * pool[:, None, :], sf, g], dim=-1))
        c = self.ctx_enc(torch.cat([pool, glob], dim=-1))
        w = valid.float()
        m = (e * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)
        return e, c, m, valid

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked scores (B, S), value (B,)). Empty slots get a score of -1e9."""
        e, c, m, valid = self._encode(obs)
        s = self.queue_size
        z = torch.cat([e, c[:, None, :].expand(-1, s, -1), m[:, None, :].expand(-1, s, -1)], dim=-1)
        scores = self.head(z).squeeze(-1).masked_fill(~valid, NEG)
        value = self.value_head(torch.cat([c, m], dim=-1)).squeeze(-1)
        return scores, value

    @property
    def queue_size(self) -> int:
        return self.spec.queue_size


def masks_from_obs(obs: torch.Tensor, spec: ObsSpec) -> torch.Tensor:
    """Valid-slot mask recovered from an observation batch (slot feature 0)."""
    bd = spec.bitmap_dim
    slots = obs[:, bd + N_GLOBAL :].reshape(obs.shape[0], spec.queue_size, spec.slot_dim)
    return slots[..., bd] > 0.5

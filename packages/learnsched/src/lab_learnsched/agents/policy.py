"""A trained agent as a Scheduler, and agent checkpoint metadata.

A checkpoint is a core checkpoint folder (`lab_shared.checkpoint`): model.safetensors + state.json whose
"agent" entry holds what is needed to rebuild the network and its observations: agent kind, ObsSpec
(table page counts, capacity, queue size, bins), hidden size and the reward scale. `AgentScheduler.load`
accepts the folder, a run directory or its checkpoints/ folder.

`lookahead=True` (spec `agent+la:PATH`) scores each queued query by its immediate reads plus the agent's
value of the state after running it (PPO: the critic V; DQN: max Q), i.e. a one-step lookahead with a
learned value function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab_learnsched.agents.nets import SlotNet
from lab_learnsched.features import Featurizer, ObsSpec
from lab_learnsched.scheduler_base import SchedState, Scheduler
from lab_shared.checkpoint import find_checkpoint, load_model_weights, read_checkpoint
from lab_shared.errors import LabError


def agent_meta(
    kind: str, spec: ObsSpec, hidden: int, reward_scale: float, workload: str, policy: str
) -> dict:
    return {
        "agent": kind,
        "table_pages": list(spec.table_pages),
        "capacity": spec.capacity,
        "queue_size": spec.queue_size,
        "bins": spec.bins,
        "hidden": hidden,
        "reward_scale": reward_scale,
        "workload": workload,
        "policy": policy,
    }


def net_from_meta(meta: dict) -> SlotNet:
    try:
        spec = ObsSpec(
            tuple(meta["table_pages"]), int(meta["capacity"]), int(meta["queue_size"]), int(meta["bins"])
        )
        return SlotNet(spec, int(meta["hidden"]))
    except (KeyError, TypeError, ValueError):
        raise LabError(
            "checkpoint has no valid agent metadata (not a `lab sched train` checkpoint?)"
        ) from None


def load_agent(path: str | Path, lookahead: bool = False) -> Scheduler:
    """The scheduler of a trained agent checkpoint: a shape-free setnet or a fixed-shape DQN/PPO agent."""
    ck = find_checkpoint(path)
    state, _, _ = read_checkpoint(ck)
    meta = state.get("agent")
    if isinstance(meta, dict) and meta.get("agent") == "setnet":
        if lookahead:
            raise LabError("agent+la (value lookahead) is not available for setnet agents; use agent:PATH")
        from lab_learnsched.agents.setnet import SetAgentScheduler

        return SetAgentScheduler.load(ck)
    return AgentScheduler.load(ck, lookahead)


class AgentScheduler(Scheduler):
    """Greedy (argmax) decisions of a trained network; optionally a value-based one-step lookahead."""

    def __init__(self, net: SlotNet, meta: dict, lookahead: bool = False):
        self.net = net.eval()
        self.meta = meta
        self.lookahead = lookahead
        self.feat = Featurizer(net.spec)
        self.name = ("agent+la:" if lookahead else "agent:") + meta.get("agent", "?")

    @classmethod
    def load(cls, path: str | Path, lookahead: bool = False) -> AgentScheduler:
        ck = find_checkpoint(path)
        state, _, _ = read_checkpoint(ck)
        meta = state.get("agent")
        if not isinstance(meta, dict):
            raise LabError(f"{ck}: not an agent checkpoint (no 'agent' metadata)")
        net = net_from_meta(meta)
        load_model_weights(net, ck / "model.safetensors")
        return cls(net, meta, lookahead)

    def _check(self, state: SchedState) -> None:
        sp = self.net.spec
        if len(state.slots) != sp.queue_size or state.pool.n_pages != self.feat.n_pages:
            raise LabError(
                f"agent was trained for a queue of {sp.queue_size} over {self.feat.n_pages} pages; got a queue of "
                f"{len(state.slots)} over {state.pool.n_pages} pages"
            )

    def fits(self, env) -> bool:
        """Whether this fixed-shape agent can run on `env` (same queue size and tables)."""
        sp = self.net.spec
        return sp.queue_size == env.queue_size and sp.table_pages == env.workload.tables.pages

    @torch.no_grad()
    def choose(self, state: SchedState) -> int:
        self._check(state)
        valid = state.valid_slots()
        if not valid:
            raise LabError("scheduler asked to choose from an empty queue")
        if len(valid) == 1:
            return valid[0]
        if not self.lookahead:
            obs = torch.from_numpy(self.feat.observe(state))[None]
            scores, _ = self.net(obs)
            return int(scores[0].argmax())
        # one-step lookahead: -reads/scale + value of the resulting state, batched over candidates
        scale = float(self.meta.get("reward_scale", 1.0))
        obs, rewards = [], []
        for i in valid:
            pool = state.pool.copy()
            _, r = pool.access(state.slots[i].pages)
            slots = list(state.slots)
            slots[i] = state.backlog[0] if state.backlog else None
            nxt = SchedState(slots, pool, state.now, state.backlog[1:], state.done + 1)
            obs.append(self.feat.observe(nxt))
            rewards.append(-r / scale)
        scores, value = self.net(torch.from_numpy(np.stack(obs)))
        if self.meta.get("agent") == "dqn":
            # Q of the best valid next action; a terminal state (no valid slot) is worth 0
            best = scores.max(dim=1).values
            value = torch.where(best < -1e8, torch.zeros_like(best), best)
        total = torch.tensor(rewards) + value
        return valid[int(total.argmax())]

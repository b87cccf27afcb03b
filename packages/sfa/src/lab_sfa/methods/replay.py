"""`replay`: a reservoir buffer of past examples; a replay minibatch is mixed into every step.

Reservoir sampling (Vitter's algorithm R) keeps a uniform sample of every example seen so far within a fixed
capacity. The buffer is filled with each task's training set after the task (so it only ever holds past
tasks). At each step the replay batch's loss gradient is mixed in as if the two batches were concatenated:
g = (B g_cur + R g_replay) / (B + R).
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from lab_sfa.methods.base import Method, Param
from lab_shared.callbacks import Callback
from lab_shared.data import to_device


class Reservoir:
    """A fixed-capacity uniform sample of a stream (algorithm R)."""

    def __init__(self, capacity: int, seed: int = 0):
        self.capacity = int(capacity)
        self.items: list[Any] = []
        self.seen = 0
        self.rng = random.Random(seed)

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        j = self.rng.randrange(self.seen)
        if j < self.capacity:
            self.items[j] = item

    def sample(self, n: int) -> list[Any]:
        return [self.items[self.rng.randrange(len(self.items))] for _ in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def state_dict(self) -> dict:
        """Items (must be JSON-able, e.g. (task, index) keys), counts and the RNG state."""
        version, internal, gauss = self.rng.getstate()
        return {"items": [list(i) if isinstance(i, tuple) else i for i in self.items], "seen": self.seen,
                "capacity": self.capacity, "rng": [version, list(internal), gauss]}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.items = [tuple(i) if isinstance(i, list) else i for i in state["items"]]
        self.seen, self.capacity = int(state["seen"]), int(state["capacity"])
        self.load_rng(state["rng"])

    def load_rng(self, rng: list) -> None:
        version, internal, gauss = rng
        self.rng.setstate((version, tuple(internal), gauss))


class ReplayCallback(Callback):
    """Adds the gradient of a replayed minibatch, weighted as in one concatenated batch."""

    def __init__(self, buffer: Reservoir, replay_batch: int, collate_fn=None, fetch=None):
        self.buffer, self.replay_batch = buffer, replay_batch
        self.collate = collate_fn or default_collate
        self.fetch = fetch or (lambda item: item)  # buffer entry -> example (Replay keeps (task, index) keys)
        self.last_loss = 0.0

    def on_before_optimizer_step(self, trainer) -> None:
        if not len(self.buffer):
            return
        b = trainer.config.batch_size
        r = self.replay_batch or b
        batch = to_device(self.collate([self.fetch(i) for i in self.buffer.sample(r)]), trainer.device)
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        w_cur, w_rep = b / (b + r), r / (b + r)
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(w_cur)
        out = trainer.loss_fn(trainer.model, batch)
        loss = out["loss"] if isinstance(out, dict) else out
        (loss * w_rep).backward()
        self.last_loss = float(loss.detach())

    def on_log(self, trainer, metrics: dict) -> None:
        metrics[f"{trainer.log_prefix}replay_loss"] = self.last_loss

    def state_dict(self) -> dict:
        """The sampler's RNG state: a task resumed mid-way replays the same examples."""
        return {"rng": self.buffer.state_dict()["rng"]}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            self.buffer.load_rng(state["rng"])


class Replay(Method):
    """Experience replay with a reservoir buffer of ``buffer_size`` examples (count, or fraction of a task).

    ``buffer_mode = "per_task"`` keeps ``buffer_size`` of *each* past task instead (a seeded random subset of
    each task's training set, e.g. 1% / 5% per task as in the paper), so the buffer grows with the tasks.
    The buffer holds (task, index) keys into the tasks' training sets, so its state is small JSON.
    """

    name = "replay"
    summary = "experience replay from a reservoir buffer of past examples, mixed into every step"
    params = (
        Param("buffer_size", float, 0.05, "examples kept: < 1 = fraction of a task's training set, >= 1 = count",
              "reservoir sampling, Vitter 1985 (algorithm R)", lo=0.0, lo_open=True),
        Param("buffer_mode", str, "total", "total: one reservoir for all tasks; per_task: buffer_size of each task",
              choices=("total", "per_task")),
        Param("replay_batch", int, 0, "examples replayed per step (0 = the training batch size)", lo=0),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        size = self.cfg.buffer_size
        capacity = int(size) if size >= 1 else max(1, int(round(size * len(self.seq.tasks[0].train))))
        self.buffer = Reservoir(0 if self.cfg.buffer_mode == "per_task" else capacity, seed=1234)

    def callbacks(self, model: nn.Module, k: int) -> list:
        return [ReplayCallback(self.buffer, self.cfg.replay_batch, self.seq.collate_fn, self._example)]

    def _example(self, key: tuple[int, int]):
        return self.seq.tasks[key[0]].train[key[1]]

    def after_task(self, model: nn.Module, k: int) -> None:
        ds = self.seq.tasks[k].train
        if self.cfg.buffer_mode == "per_task":
            size = self.cfg.buffer_size
            n = int(size) if size >= 1 else max(1, int(round(size * len(ds))))
            keep = random.Random(1234 + k).sample(range(len(ds)), min(n, len(ds)))
            self.buffer.capacity += len(keep)
            self.buffer.items.extend((k, i) for i in keep)
            self.buffer.seen += len(ds)
            return
        for i in range(len(ds)):
            self.buffer.add((k, i))

    def stored_examples(self) -> int:
        return len(self.buffer)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])

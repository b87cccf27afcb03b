"""Training configuration of `lab sched train` (loadable from TOML/JSON, overridable with --set)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PPOConfig:
    rollout: int = 64  # steps per env per update
    epochs: int = 4
    minibatches: int = 4
    clip: float = 0.2
    gamma: float = 1.0  # episodes are short and the objective is total reads: no discounting
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    anneal_lr: bool = True


@dataclass
class DQNConfig:
    buffer_size: int = 50_000
    batch_size: int = 128
    learning_starts: int = 2_000
    train_every: int = 1  # gradient steps every N vector steps
    target_every: int = 1_000  # env steps between target network syncs
    gamma: float = 0.99
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.3  # of total steps to anneal epsilon over
    double: bool = True
    max_grad_norm: float = 10.0


@dataclass
class TrainConfig:
    agent: str = "ppo"  # ppo | dqn
    workload: str = "default"  # built-in name or a workload/trace file
    buffer_pages: int = 0  # 0 = the workload's suggestion
    queue_size: int = 0  # 0 = the workload's suggestion
    policy: str = "lru"  # buffer replacement policy of the simulator: lru | clock
    bins: int = 32  # downsampled bitmap bins per table
    steps: int = 150_000  # environment steps (decisions)
    num_envs: int = 8
    hidden: int = 128
    lr: float = 3e-4
    seed: int = 0
    threads: int = 1  # torch CPU threads (the machine is shared)
    rollout_shards: int = 0  # 0: envs stepped in lockstep here; S: S shards a rollout (agents/shards.py)
    eval_every: int = 25_000  # env steps between validation evaluations
    eval_episodes: int = 16  # validation episodes (seeds VAL_SEED0 + i, disjoint from train and test)
    ckpt_every: int = 50_000  # env steps between checkpoints
    ppo: PPOConfig = field(default_factory=PPOConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)


# Episode seeds: test/bench episodes use 0.. (held out), validation 900_000.., training 10_000_000..
VAL_SEED0 = 900_000
TRAIN_SEED0 = 10_000_000

# Workload-family instance seeds: test instances 0.., validation 5_000.., training 10_000..
VAL_INSTANCE0 = 5_000
TRAIN_INSTANCE0 = 10_000


@dataclass
class SetTrainConfig:
    """`lab sched train --agent setnet`: one shape-free agent trained on many generated workloads."""

    agent: str = "setnet"
    families: list[str] = field(
        default_factory=lambda: ["hotset", "lookup", "mixed", "poisson", "bursty", "skew"]
    )
    instances: int = 200  # training instances per family (instance seeds TRAIN_INSTANCE0 + k)
    policy: str = "lru"
    steps: int = 1_000_000
    max_seconds: float = 0.0  # > 0: also stop (checkpointed, best kept) after this much wall time
    num_envs: int = 16
    max_queue: int = 32  # the training env pads every window to this many slots
    reward_div: float = 10.0  # rewards / this: episode returns of a few units keep the value loss from
    # dominating the clipped gradient
    hidden: int = 32
    layers: int = 2
    heads: int = 2
    lr: float = 5e-4
    seed: int = 0
    threads: int = 1
    rollout_shards: int = 0  # 0: one vectorized env stepped here; S: S shards a rollout (agents/shards.py)
    eval_every: int = 100_000
    val_instances: int = 4  # validation instances per family (seeds VAL_INSTANCE0 + k)
    val_episodes: int = 2  # episodes per validation instance (seeds VAL_SEED0 + j)
    ckpt_every: int = 100_000
    # planner imitation (agents/distill.py) before PPO: behaviour cloning on `distill_episodes` planner
    # episodes, then `dagger_rounds` DAgger rounds of `dagger_episodes` episodes each (the net drives, the
    # planner labels; the planner's own move with probability dagger_beta ** round); 0 = PPO from scratch.
    # `steps=0` with distillation: imitation only. distill_seconds > 0 (and distill_episodes = 0): the older
    # time-bounded behaviour cloning only.
    distill_episodes: int = 0
    dagger_rounds: int = 0
    dagger_episodes: int = 100
    dagger_beta: float = 0.5
    distill_chunk: int = 20  # episodes per saved part of the collection (the resume granularity)
    distill_seconds: float = 0.0
    distill_planner: str = "planner:2:2:64"  # labels: ~4 ms a decision, within 0.2% of planner:4:3:256
    distill_epochs: int = 30
    distill_soft: float = 0.0  # > 0: also fit the planner's scores of every slot at this temperature
    distill_lr: float = 1e-3
    ppo: PPOConfig = field(
        default_factory=lambda: PPOConfig(rollout=64, epochs=2, minibatches=4, ent_coef=0.005)
    )

"""Paper-regime image sequences: a broad pretraining mixture that covers every later task's domain.

The paper fine-tunes a foundation model (Pythia / Llama) on Math -> Law -> Code: domains its pretraining
already saw, with one shared output space (the vocabulary). The image analogue built here:

- domains: Fashion-MNIST, MNIST-5k and scikit-learn digits, each also rotated (90/180/270 degrees);
- one shared 20-way head: Fashion-MNIST classes are labels 0-9, digits (MNIST and sklearn) labels 10-19,
  so, as with an LM's vocabulary, fine-tuning on one domain can erase the others' outputs;
- pretraining: a mixture of every domain of the sequence (``n_pretrain`` examples in total, spread evenly),
  drawn from a pool of training examples disjoint from the pool the tasks draw from (the test splits are
  never trained on);
- tasks: one domain each, evaluated among all 20 outputs.

``paper``: 5 tasks (fmnist, mnist, fmnist-rot90, mnist-rot90, digits); ``paper-long``: 10 tasks (fmnist and
mnist at 0/90/180/270 degrees, digits at 0/90). ``sequence.order``: 0 = the listed order, 1 = reversed,
n >= 2 = a permutation seeded by n; the task data and the pretraining do not depend on the order.
"""

from __future__ import annotations

import functools

import numpy as np

from lab_sfa.images.data import load_digits28, load_fmnist, load_mnist5k
from lab_sfa.images.sequences import assemble
from lab_sfa.images.tasks import ImageDataset, make_task
from lab_sfa.images.transforms import rotate
from lab_sfa.tasktypes import SequenceConfig, Task, TaskSequence
from lab_shared.errors import LabError

# base dataset -> (loader, label offset in the shared head, fraction of its training split kept for pretraining)
BASES = {
    "fmnist": (load_fmnist, 0, 0.5),
    "mnist": (load_mnist5k, 10, 0.4),
    "digits": (load_digits28, 10, 0.3),
}
N_OUTPUTS = 20
PAPER = [("fmnist", 0), ("mnist", 0), ("fmnist", 90), ("mnist", 90), ("digits", 0)]
PAPER_LONG = [(b, r) for b in ("fmnist", "mnist") for r in (0, 90, 180, 270)] + [
    ("digits", 0),
    ("digits", 90),
]


def domain_name(base: str, degrees: int) -> str:
    return base if degrees == 0 else f"{base}-rot{degrees}"


@functools.lru_cache(maxsize=8)
def split_pools(base: str, data_seed: int) -> tuple[tuple, tuple]:
    """(pretraining arrays, task arrays) of one base dataset: disjoint training examples, the same test split.

    Both tuples are (x_train, y_train, x_test, y_test) with labels already offset into the shared head; the
    pretraining tuple's test split is the task one's too (it is only used to report pretraining accuracy).
    """
    loader, offset, frac = BASES[base]
    xtr, ytr, xte, yte = loader()
    perm = np.random.default_rng(data_seed + 7919).permutation(len(ytr))
    n_pre = int(len(perm) * frac)
    pre, task = perm[:n_pre], perm[n_pre:]
    return (
        (xtr[pre], ytr[pre] + offset, xte, yte + offset),
        (xtr[task], ytr[task] + offset, xte, yte + offset),
    )


def task_order(n_tasks: int, order: int) -> list[int]:
    """The permutation of task positions for ``sequence.order`` (0 = as listed, 1 = reversed, else seeded)."""
    if order < 0:
        raise LabError(f"sequence.order must be >= 0, got {order}")
    if order == 0:
        return list(range(n_tasks))
    if order == 1:
        return list(range(n_tasks))[::-1]
    return [int(i) for i in np.random.default_rng(order).permutation(n_tasks)]


def _rot(degrees: int):
    return (lambda a: rotate(a, degrees)) if degrees else None


def _pretrain_mixture(domains: list[tuple[str, int]], cfg: SequenceConfig, pools: dict) -> Task:
    """An even mixture of every domain, drawn from the pretraining pools only."""
    per = max(1, cfg.n_pretrain // len(domains)) if cfg.n_pretrain > 0 else 0
    xs, ys, xts, yts = [], [], [], []
    for i, (base, deg) in enumerate(domains):
        xtr, ytr, xte, yte = pools[base][0]
        rng = np.random.default_rng(cfg.data_seed + 500 + i)
        idx = rng.permutation(len(ytr))[: per or len(ytr)]
        tf = _rot(deg) or (lambda a: a)
        xs.append(tf(xtr[idx]))
        ys.append(ytr[idx])
        te = rng.permutation(len(yte))[:200]
        xts.append(tf(xte[te]))
        yts.append(yte[te])
    x, y = np.concatenate(xs), np.concatenate(ys)
    return Task(
        name="pretrain-mixture",
        train=ImageDataset(x, y, 0),
        test=ImageDataset(np.concatenate(xts), np.concatenate(yts), 0),
        index=0,
        n_classes=N_OUTPUTS,
        info={"domains": [domain_name(b, d) for b, d in domains], "per_domain": per},
    )


def build(name: str, domains: list[tuple[str, int]], cfg: SequenceConfig) -> TaskSequence:
    """The sequence of ``domains`` after a pretraining mixture of all of them (see the module docstring)."""
    if cfg.head not in ("auto", "shared"):
        raise LabError(f"the {name} sequence has one shared head (head = auto or shared), got '{cfg.head}'")
    pools = {b: split_pools(b, cfg.data_seed) for b in {b for b, _ in domains}}
    tasks = []
    for i, (base, deg) in enumerate(domains):  # seeds follow the domain, so every order sees the same data
        t = make_task(
            domain_name(base, deg),
            0,
            pools[base][1],
            cfg,
            seed=cfg.data_seed + 31 * i + 1,
            transform=_rot(deg),
        )
        t.n_classes = N_OUTPUTS
        tasks.append(t)
    tasks = [tasks[j] for j in task_order(len(tasks), cfg.order)]
    for pos, t in enumerate(tasks):
        t.index = pos
    pretrain = _pretrain_mixture(domains, cfg, pools)
    seq = assemble(name, cfg, pretrain, tasks, multi=False)
    seq.info.update({"regime": "paper", "order": cfg.order, "pretrain_domains": pretrain.info["domains"]})
    return seq


def build_paper(cfg: SequenceConfig) -> TaskSequence:
    """5 tasks: fmnist, mnist, fmnist-rot90, mnist-rot90, digits (pretraining covers all five)."""
    return build("paper", PAPER, cfg)


def build_paper_long(cfg: SequenceConfig) -> TaskSequence:
    """10 tasks: fmnist and mnist at 0/90/180/270 degrees, digits at 0/90 (pretraining covers all ten)."""
    return build("paper-long", PAPER_LONG, cfg)

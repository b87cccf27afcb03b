"""Built-in image sequences: the default domain sequence and Split-FMNIST (task-incremental)."""

from __future__ import annotations

import functools

from lab_sfa.images.data import load_digits28, load_fmnist, load_mnist5k
from lab_sfa.images.models import build_model
from lab_sfa.images.tasks import image_evaluate, image_loss, make_task
from lab_sfa.images.transforms import permute_pixels, rotate
from lab_sfa.tasktypes import SequenceConfig, Task, TaskSequence
from lab_shared.errors import LabError


def assemble(
    name: str, cfg: SequenceConfig, pretrain: Task | None, tasks: list[Task], multi: bool, in_ch: int = 1
) -> TaskSequence:
    """Wrap image tasks into a TaskSequence with the model factory, loss and evaluation."""
    n_classes = [t.n_classes for t in tasks]
    if pretrain is not None:
        if multi:
            raise LabError("a multi-head image sequence cannot have a pretraining task")
        n_classes.append(pretrain.n_classes)
    make_model = functools.partial(build_model, cfg.model, in_ch, cfg.width, n_classes, multi, cfg.norm)

    def evaluate(model, task: Task, split: str = "test") -> dict[str, float]:
        return image_evaluate(model, task, split, cfg.eval_batch_size)

    return TaskSequence(
        name=name,
        tasks=tasks,
        pretrain=pretrain,
        make_model=make_model,
        loss_fn=image_loss,
        evaluate=evaluate,
        metric="accuracy",
        info={"head": "multi" if multi else "shared", "model": cfg.model, "width": cfg.width},
    )


def _head(cfg: SequenceConfig, default: str) -> bool:
    head = default if cfg.head == "auto" else cfg.head
    if head not in ("shared", "multi"):
        raise LabError(f"head must be auto, shared or multi, got '{cfg.head}'")
    return head == "multi"


def build_default(cfg: SequenceConfig) -> TaskSequence:
    """Pretrain on Fashion-MNIST, then MNIST-5k -> FMNIST rotated 90 -> FMNIST permuted -> sklearn digits.

    Four distinct domains after an in-domain pretraining task; shared 10-way head (domain-incremental).
    """
    s = cfg.data_seed
    xtr, ytr, xte, yte = load_fmnist()
    pretrain = make_task("fmnist", 0, (xtr, ytr, xte, yte), cfg, seed=s + 100, n_train=cfg.n_pretrain)
    tasks = [
        make_task("mnist", 0, load_mnist5k(), cfg, seed=s + 1),
        make_task(
            "fmnist-rot90", 1, (xtr, ytr, xte, yte), cfg, seed=s + 2, transform=lambda a: rotate(a, 90)
        ),
        make_task(
            "fmnist-perm",
            2,
            (xtr, ytr, xte, yte),
            cfg,
            seed=s + 3,
            transform=lambda a: permute_pixels(a, s + 7),
        ),
        make_task("digits", 3, load_digits28(), cfg, seed=s + 4),
    ]
    multi = _head(cfg, "shared")
    if multi:
        pretrain = None
    # Shared head: every task uses head 0.
    for t in tasks if not multi else []:
        t.train.task = t.test.task = 0
        if t.val is not None:
            t.val.task = 0
    return assemble("default", cfg, pretrain, tasks, multi)


def build_split_fmnist(cfg: SequenceConfig) -> TaskSequence:
    """Split-FMNIST: five 2-class tasks (classes 0/1, 2/3, ...), one head per task (task-incremental)."""
    arrays = load_fmnist()
    tasks = [
        make_task(
            f"fmnist-{2 * i}{2 * i + 1}", i, arrays, cfg, seed=cfg.data_seed + i, classes=[2 * i, 2 * i + 1]
        )
        for i in range(5)
    ]
    multi = _head(cfg, "multi")
    if not multi:
        for t in tasks:
            t.train.task = t.test.task = 0
            if t.val is not None:
                t.val.task = 0
    return assemble("split-fmnist", cfg, None, tasks, multi)

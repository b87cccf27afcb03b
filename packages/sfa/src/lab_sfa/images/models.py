"""Small image models: a CNN and a ResNet, configurable width, with one shared head or one head per task.

``model(x, task)`` takes the images and the task index of each example; a shared-head model ignores it, a
multi-head model routes each example to its task's head (task-incremental learning). Logits of classes a
head does not have are filled with a large negative number, so cross-entropy and argmax ignore them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lab_shared.errors import LabError

NEG = -1e9


def _norm(kind: str, ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch) if kind == "bn" else nn.Identity()


class Heads(nn.Module):
    """One linear head per task (multi-head) or a single shared one."""

    def __init__(self, in_features: int, n_classes: list[int], multi: bool):
        super().__init__()
        self.multi = multi
        sizes = n_classes if multi else [max(n_classes)]
        self.heads = nn.ModuleList(nn.Linear(in_features, c) for c in sizes)
        self.max_classes = max(sizes)

    def forward(self, h: Tensor, task: Tensor | None) -> Tensor:
        if not self.multi or len(self.heads) == 1:
            return self.heads[0](h)
        if task is None:
            raise ValueError("a multi-head model needs the task index of each example")
        out = h.new_full((h.shape[0], self.max_classes), NEG)
        for t in torch.unique(task).tolist():
            mask = task == t
            logits = self.heads[t](h[mask])
            out[mask, : logits.shape[1]] = logits
        return out


class SmallCNN(nn.Module):
    """conv(w)-pool-conv(2w)-pool-fc(8w)-heads: ~10^5 parameters at w=16, fast on CPU."""

    def __init__(self, in_ch: int, width: int, n_classes: list[int], multi: bool, norm: str = "none"):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, w, 3, padding=1),
            _norm(norm, w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            _norm(norm, 2 * w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * w * 16, 8 * w),
            nn.ReLU(),
        )
        self.head = Heads(8 * w, n_classes, multi)

    def forward(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        return self.head(self.features(x), task)


class MLP(nn.Module):
    """flatten-fc(16w)-fc(16w)-heads: the fastest model on a CPU (272k parameters at w=16, 28x28 input)."""

    def __init__(self, in_features: int, width: int, n_classes: list[int], multi: bool):
        super().__init__()
        h = 16 * width
        self.features = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU()
        )
        self.head = Heads(h, n_classes, multi)

    def forward(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        return self.head(self.features(x), task)


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs with a (projected) identity shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=norm != "bn")
        self.bn1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=norm != "bn")
        self.bn2 = _norm(norm, cout)
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=norm != "bn"), _norm(norm, cout))
        )

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.short(x))


class SmallResNet(nn.Module):
    """A 3-stage ResNet (widths w, 2w, 4w; ``depth`` blocks per stage) with global pooling."""

    def __init__(
        self, in_ch: int, width: int, n_classes: list[int], multi: bool, norm: str = "bn", depth: int = 1
    ):
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_ch, w, 3, 1, 1, bias=norm != "bn"), _norm(norm, w), nn.ReLU()]
        cin = w
        for i, cout in enumerate((w, 2 * w, 4 * w)):
            for b in range(depth):
                layers.append(BasicBlock(cin, cout, 2 if (b == 0 and i > 0) else 1, norm))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = Heads(4 * w, n_classes, multi)

    def forward(self, x: Tensor, task: Tensor | None = None) -> Tensor:
        return self.head(self.features(x), task)


def build_model(
    kind: str, in_ch: int, width: int, n_classes: list[int], multi: bool, norm: str = "auto"
) -> nn.Module:
    """Build ``cnn``, ``resnet`` or ``mlp`` (28x28 inputs); norm 'auto': none for the CNN, BatchNorm for the ResNet."""
    if width < 1:
        raise LabError(f"model width must be >= 1, got {width}")
    if kind == "cnn":
        return SmallCNN(in_ch, width, n_classes, multi, "none" if norm == "auto" else norm)
    if kind == "resnet":
        return SmallResNet(in_ch, width, n_classes, multi, "bn" if norm == "auto" else norm)
    if kind == "mlp":
        return MLP(in_ch * 28 * 28, width, n_classes, multi)
    raise LabError(f"unknown image model '{kind}' (use cnn, resnet or mlp)")

"""Domain shifts that turn one dataset into a new task: rotation and a fixed pixel permutation."""

from __future__ import annotations

import numpy as np

from lab_shared.errors import LabError


def rotate(x: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate images [N, C, H, W] by a multiple of 90 degrees (exact, no interpolation)."""
    if degrees % 90:
        raise LabError(f"rotation must be a multiple of 90 degrees, got {degrees}")
    return np.ascontiguousarray(np.rot90(x, k=(degrees // 90) % 4, axes=(2, 3)))


def permute_pixels(x: np.ndarray, seed: int) -> np.ndarray:
    """Apply one fixed (seeded) permutation to the pixels of every image: Permuted-MNIST style."""
    n, c, h, w = x.shape
    perm = np.random.default_rng(seed).permutation(h * w)
    return np.ascontiguousarray(x.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w))


def apply_transform(x: np.ndarray, spec: str | None, seed: int) -> np.ndarray:
    """Apply a transform spec: None, 'rot90' / 'rot180' / 'rot270', 'permute'."""
    if not spec:
        return x
    if spec.startswith("rot") and spec[3:].isdigit():
        return rotate(x, int(spec[3:]))
    if spec == "permute":
        return permute_pixels(x, seed)
    raise LabError(f"unknown transform '{spec}' (use rot90, rot180, rot270 or permute)")

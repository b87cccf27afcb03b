"""User task sequences from a TOML file pointing at .npz arrays, image folders or built-in datasets.

    head = "shared"            # or "multi" (one head per task); default shared
    image_size = 28            # folder images are resized to this (square)
    channels = 1               # 1 = grayscale, 3 = RGB (folder images are converted)

    [pretrain]                 # optional: trained before the sequence (theta_pre)
    builtin = "fmnist"         # fmnist | mnist5k | digits

    [[tasks]]
    name = "mine"
    npz = "data/mine.npz"      # arrays x_train, y_train, x_test, y_test (x: N,H,W | N,H,W,C | N,C,H,W;
                               #   uint8 0..255 or float 0..1; y: integer class ids)
    [[tasks]]
    name = "photos"
    folder = "data/photos"     # train/<class>/*.png + test/<class>/*.png, or <class>/*.png split by
    test_fraction = 0.2        #   test_fraction; class ids follow the sorted subfolder names
    [[tasks]]
    name = "fmnist-rot"
    builtin = "fmnist"
    transform = "rot90"        # optional: rot90 | rot180 | rot270 | permute

Relative paths are relative to the TOML file. Missing or malformed data raises LabError naming the file.
"""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import numpy as np

from lab_sfa.images.data import load_builtin
from lab_sfa.images.sequences import assemble
from lab_sfa.images.tasks import make_task
from lab_sfa.images.transforms import apply_transform
from lab_sfa.tasktypes import SequenceConfig, TaskSequence
from lab_shared.errors import LabError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TOP_KEYS = {"kind", "name", "head", "image_size", "channels", "pretrain", "tasks"}
TASK_KEYS = {"name", "npz", "folder", "builtin", "test_fraction", "transform"}


def _to_nchw(x: np.ndarray, channels: int, where: str) -> np.ndarray:
    """Normalise an image array to float32 [N, C, H, W] in [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise LabError(f"{where}: images must have shape N,H,W or N,H,W,C or N,C,H,W, got {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or x.shape[0] == 0:
        raise LabError(f"{where}: images must be a non-empty numeric array, got {x.dtype} {x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise LabError(f"{where}: images hold nan or inf values (need finite numbers)")
    if x.max(initial=0) > 1.0:
        x = x / 255.0
    if x.shape[1] != channels:
        if x.shape[1] == 3 and channels == 1:
            x = x.mean(1, keepdims=True)
        elif x.shape[1] == 1 and channels == 3:
            x = np.repeat(x, 3, axis=1)
        else:
            raise LabError(f"{where}: {x.shape[1]} channels, expected {channels}")
    return np.ascontiguousarray(x)


def _labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise LabError(f"{where}: labels must be a 1-d array of {n} entries, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise LabError(f"{where}: labels must be non-negative integers")
    return y.astype(np.int64)


def load_npz(path: Path, channels: int):
    """Arrays x_train, y_train, x_test, y_test from an .npz file (never unpickles objects)."""
    if not path.exists():
        raise LabError(f"task data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z]
            if missing:
                raise LabError(
                    f"{path}: missing array '{missing[0]}' (need x_train, y_train, x_test, y_test)"
                )
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise LabError(f"cannot read {path}: {e}") from e
    xtr = _to_nchw(arrays["x_train"], channels, str(path))
    xte = _to_nchw(arrays["x_test"], channels, str(path))
    return (
        xtr,
        _labels(arrays["y_train"], len(xtr), str(path)),
        xte,
        _labels(arrays["y_test"], len(xte), str(path)),
    )


def _read_images(root: Path, classes: list[str], size: int, channels: int):
    from PIL import Image, UnidentifiedImageError

    xs, ys = [], []
    for ci, c in enumerate(classes):
        d = root / c
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if channels == 1 else "RGB").resize((size, size))
                    xs.append(np.asarray(im, dtype=np.uint8))
            except (OSError, UnidentifiedImageError) as e:
                raise LabError(f"cannot read image {f}: {e}") from e
            ys.append(ci)
    if not xs:
        raise LabError(f"no images found under {root} (expected one subfolder per class)")
    return _to_nchw(np.stack(xs), channels, str(root)), np.array(ys, dtype=np.int64)


def load_folder(path: Path, size: int, channels: int, test_fraction: float, seed: int):
    """Images from class subfolders: train/ + test/ if present, else one folder split by test_fraction."""
    if not path.is_dir():
        raise LabError(f"task image folder not found: {path}")
    if (path / "train").is_dir() and (path / "test").is_dir():
        classes = sorted(p.name for p in (path / "train").iterdir() if p.is_dir())
        xtr, ytr = _read_images(path / "train", classes, size, channels)
        xte, yte = _read_images(path / "test", classes, size, channels)
        return xtr, ytr, xte, yte
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise LabError(f"{path}: expected one subfolder per class (or train/ and test/)")
    if not 0.0 < test_fraction < 1.0:
        raise LabError(f"{path}: test_fraction must be in (0, 1), got {test_fraction}")
    x, y = _read_images(path, classes, size, channels)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_te = max(1, int(round(test_fraction * len(x))))
    return x[perm[n_te:]], y[perm[n_te:]], x[perm[:n_te]], y[perm[:n_te]]


def _load_entry(entry: dict, base: Path, size: int, channels: int, seed: int, where: str):
    if not isinstance(entry, dict):
        raise LabError(f"{where}: must be a table (npz, folder or builtin = ...), got {entry!r}")
    if set(entry) - TASK_KEYS:
        raise LabError(
            f"{where}: unknown key(s) {sorted(set(entry) - TASK_KEYS)} (known: {sorted(TASK_KEYS)})"
        )
    sources = [k for k in ("npz", "folder", "builtin") if k in entry]
    if len(sources) != 1:
        raise LabError(f"{where}: give exactly one of npz, folder or builtin")
    if not isinstance(entry[sources[0]], str) or not isinstance(entry.get("test_fraction", 0.2), int | float):
        raise LabError(f"{where}: {sources[0]} must be a string and test_fraction a number")
    if "npz" in entry:
        arrays = load_npz(base / entry["npz"], channels)
    elif "folder" in entry:
        arrays = load_folder(
            base / entry["folder"], size, channels, float(entry.get("test_fraction", 0.2)), seed
        )
    else:
        arrays = load_builtin(str(entry["builtin"]))
        if channels != 1:
            arrays = tuple(_to_nchw(a, channels, where) if a.ndim == 4 else a for a in arrays)
    if arrays[0].shape[2:] != arrays[2].shape[2:]:
        raise LabError(f"{where}: train and test images differ in size")
    tf = entry.get("transform")
    if tf:
        arrays = (
            apply_transform(arrays[0], tf, seed),
            arrays[1],
            apply_transform(arrays[2], tf, seed),
            arrays[3],
        )
    return arrays


def build_from_file(path: Path, cfg: SequenceConfig) -> TaskSequence:
    """Build a TaskSequence from a task-sequence TOML file (format in the module docstring)."""
    if not path.exists():
        raise LabError(f"task-sequence file not found: {path}")
    try:
        spec = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LabError(f"{path}: invalid TOML: {e}") from e
    entries = spec.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise LabError(f"{path}: needs at least one [[tasks]] entry")
    if set(spec) - TOP_KEYS:
        raise LabError(f"{path}: unknown key(s) {sorted(set(spec) - TOP_KEYS)} (known: {sorted(TOP_KEYS)})")
    size, channels = spec.get("image_size", 28), spec.get("channels", 1)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1024:
        raise LabError(f"{path}: image_size must be an integer in [1, 1024], got {size!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise LabError(f"{path}: channels must be 1 or 3")
    head = spec.get("head", "shared") if cfg.head == "auto" else cfg.head
    if head not in ("shared", "multi"):
        raise LabError(f"{path}: head must be 'shared' or 'multi'")
    multi = head == "multi"
    base = path.parent
    tasks, shapes = [], set()
    for i, entry in enumerate(entries):
        where = f"{path}: task {i + 1}"
        arrays = _load_entry(entry, base, size, channels, cfg.data_seed + i, where)
        shapes.add(arrays[0].shape[1:])
        task = make_task(str(entry.get("name", f"task{i + 1}")), i, arrays, cfg, seed=cfg.data_seed + i)
        if not multi:
            task.train.task = task.test.task = 0
            if task.val is not None:
                task.val.task = 0
        tasks.append(task)
    pretrain = None
    if "pretrain" in spec:
        arrays = _load_entry(spec["pretrain"], base, size, channels, cfg.data_seed + 100, f"{path}: pretrain")
        shapes.add(arrays[0].shape[1:])
        pretrain = make_task("pretrain", 0, arrays, cfg, seed=cfg.data_seed + 100, n_train=cfg.n_pretrain)
    if len(shapes) > 1:
        raise LabError(f"{path}: tasks have different image shapes {sorted(shapes)}")
    return assemble(str(spec.get("name", path.stem)), cfg, pretrain, tasks, multi, in_ch=channels)

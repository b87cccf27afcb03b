"""Continual-learning metrics from the accuracy matrix (GEM, Lopez-Paz & Ranzato 2017).

R[i][j] = accuracy on task j after training task i (K x K). ``r0`` (optional) is the accuracy on each task
before any training in the sequence (the pretrained model), for forward transfer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize(R: Sequence[Sequence[float]], r0: Sequence[float] | None = None) -> dict[str, float]:
    """ACC, BWT, forgetting, plasticity (and forward transfer with ``r0``) of a K x K accuracy matrix.

    - acc = mean_j R[K-1][j]                       (final average accuracy)
    - bwt = mean_{j<K-1} (R[K-1][j] - R[j][j])      (backward transfer; negative = forgetting)
    - forgetting = mean_{j<K-1} (max_{i<K-1} R[i][j] - R[K-1][j])   (Chaudhry et al. 2018)
    - plasticity = mean_j R[j][j]                   (accuracy right after learning each task)
    - fwt = mean_{j>0} (R[j-1][j] - r0[j])          (forward transfer)
    """
    r = np.asarray(R, dtype=float)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be square and non-empty, got shape {r.shape}")
    k = r.shape[0]
    out = {"acc": float(r[-1].mean()), "plasticity": float(np.diag(r).mean())}
    if k > 1:
        out["bwt"] = float(np.mean([r[-1, j] - r[j, j] for j in range(k - 1)]))
        out["forgetting"] = float(np.mean([r[j : k - 1, j].max() - r[-1, j] for j in range(k - 1)]))
    else:
        out["bwt"] = out["forgetting"] = 0.0
    if r0 is not None and k > 1:
        out["fwt"] = float(np.mean([r[j - 1, j] - r0[j] for j in range(1, k)]))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

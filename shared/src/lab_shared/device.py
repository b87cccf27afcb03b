"""Device choice: cuda > mps > cpu, overridable by argument or the LAB_DEVICE variable."""

from __future__ import annotations

import os

from lab_shared.errors import LabError


def choose_device(pref: str = "auto"):
    """The torch.device to use. `pref` is auto, cpu, cuda, cuda:N or mps."""
    import torch

    pref = os.environ.get("LAB_DEVICE", pref) if pref == "auto" else pref
    if pref == "auto":
        if torch.cuda.is_available():
            if "LOCAL_RANK" in os.environ:
                return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError:
        raise LabError(f"unknown device '{pref}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LabError(f"device '{pref}' requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LabError(f"device '{pref}' requested but MPS is not available")
    return dev

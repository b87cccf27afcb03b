"""Continual-learning methods, one module each, registered by name (``registry.py``; the interface: ``base.py``).

Nothing heavy is imported here, so the registry (names, parameters) is readable without torch.
"""

from typing import Any

from lab_sfa.methods.registry import Param, method_names, register_method

__all__ = ["Method", "MethodConfig", "Param", "make_method", "method_names", "register_method"]


def __getattr__(name: str) -> Any:
    if name in ("Method", "make_method"):
        from lab_sfa.methods import base

        return getattr(base, name)
    if name == "MethodConfig":
        from lab_sfa.methods.config import MethodConfig

        return MethodConfig
    raise AttributeError(name)

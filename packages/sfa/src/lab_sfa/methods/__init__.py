"""Continual-learning methods, one module each, registered by name (see ``base.py``)."""

from lab_sfa.methods.base import Method, MethodConfig, make_method, method_names, register_method

__all__ = ["Method", "MethodConfig", "make_method", "method_names", "register_method"]

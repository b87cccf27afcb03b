"""Which continual-learning methods exist and how each declares its parameters (no torch: `--help` stays fast).

Each method is one class (``lab_sfa.methods.<name>``) with a ``params`` tuple of `Param`: name, type, default,
a one-line description, the paper/equation it comes from and its range. The registry maps a method's name
to that class ("module:Class", imported only when needed), mergekit-style: `lab sfa methods` lists them,
`method.<param>` options are checked against the chosen method's own parameters, and an option the method
does not use is refused with one line.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from lab_shared.errors import LabError


@dataclass(frozen=True)
class Param:
    """One parameter of a method: what `--set method.<name>=...` sets."""

    name: str
    type: type  # float | int | bool | str
    default: Any
    help: str  # one line
    ref: str = ""  # paper / equation, where there is one
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()

    def range_text(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        if self.lo is None and self.hi is None:
            return ""
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"{left}{self.lo:g}, {self.hi:g}{right}"

    def check(self, method: str, value: Any) -> None:
        """LabError naming method.<param> unless `value` is in range (finite, one of the choices)."""
        key = f"method.{self.name}"
        if self.choices and value not in self.choices:
            raise LabError(f"{key} ({method}) must be one of {', '.join(self.choices)}, got {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise LabError(f"{key} ({method}) must be a finite number, got {value}")
            lo_bad = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
            hi_bad = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
            if lo_bad or hi_bad:
                rng = self.range_text()
                raise LabError(
                    f"{key} ({method}) must be {'in ' if rng[0] in '([' else ''}{rng}, got {value}"
                )


# name -> "module:Class" (lazy) or the class itself (register_method)
_REGISTRY: dict[str, Any] = {
    "seq": "lab_sfa.methods.seq:Sequential",
    "multitask": "lab_sfa.methods.multitask:Multitask",
    "sfa": "lab_sfa.methods.sfa:SFA",
    "replay": "lab_sfa.methods.replay:Replay",
    "l2": "lab_sfa.methods.l2:L2",
    "ewc": "lab_sfa.methods.ewc:EWC",
    "task_arithmetic": "lab_sfa.methods.task_arithmetic:TaskArithmetic",
    "ties": "lab_sfa.methods.ties:Ties",
    "wise_ft": "lab_sfa.methods.wise_ft:WiseFT",
}


def method_names() -> list[str]:
    return list(_REGISTRY)


def register_method(name: str, target: Any) -> None:
    """Add a method: a Method subclass or a lazy "module:Class" string. Its parameters must use names and
    types the built-in MethodConfig knows (checked when the class is first used)."""
    _REGISTRY[name] = target


def method_class(name: str) -> type:
    """The class of method `name`; LabError naming the known methods otherwise."""
    if name not in _REGISTRY:
        raise LabError(f"unknown method '{name}' (known: {', '.join(_REGISTRY)})")
    target = _REGISTRY[name]
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        target = getattr(importlib.import_module(module), cls)
        _REGISTRY[name] = target
    return target


def method_params(name: str) -> tuple[Param, ...]:
    return tuple(method_class(name).params)


def describe_methods(names: list[str] | None = None) -> str:
    """Each method (default: all) with its parameters, defaults, ranges and references: `lab sfa methods`."""
    return "\n".join(describe_method(name) for name in (names or method_names()))


def describe_method(name: str) -> str:
    """One method's block: a `name: summary` line, then one indented line per parameter."""
    lines = [f"{name}: {method_class(name).summary}"]
    for p in method_params(name):
        rng = f", {p.range_text()}" if p.range_text() else ""
        ref = f"  [{p.ref}]" if p.ref else ""
        lines.append(f"    method.{p.name}: {p.type.__name__} = {p.default!r}{rng}  -- {p.help}{ref}")
    return "\n".join(lines if len(lines) > 1 else [*lines, "    (no parameters)"])

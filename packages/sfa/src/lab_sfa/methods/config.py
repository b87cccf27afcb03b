"""`MethodConfig`: the `[method]` table of a run, built from the parameters every method declares.

Its fields are ``name`` and the union of the registered methods' parameters, each None ("not given") by
default, so the config loader checks names and types as for any dataclass. `resolve_method` then fills
the chosen method's own defaults and refuses any parameter that method does not declare, with one line
naming the method and its valid parameters (``--method seq --set method.beta=0.5`` is exit 2).
Each field also carries the methods' defaults for `lab config show sfa run` (`# beta = 0.5  # default of sfa`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lab_sfa.methods.registry import Param, method_class, method_names
from lab_shared.errors import LabError


def _union() -> dict[str, Param]:
    """Every declared parameter by name; two methods may share a name only with the same type."""
    out: dict[str, Param] = {}
    for name in method_names():
        for p in method_class(name).params:
            if p.name in out and out[p.name].type is not p.type:
                raise TypeError(f"method parameter '{p.name}' declared as two types")
            out.setdefault(p.name, p)
    return out


def _users() -> dict[str, list[tuple[str, Any]]]:
    """{parameter: [(method, its default), ...]} in registry order."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for name in method_names():
        for p in method_class(name).params:
            out.setdefault(p.name, []).append((name, p.default))
    return out


def _shown(users: list[tuple[str, Any]]) -> dict:
    """What `lab config show sfa run` writes for an unset parameter: the first user's default and the methods
    that use it ("default of l2, ties; ewc: 100.0" where a method's default differs)."""
    first = users[0][1]
    same = ", ".join(m for m, d in users if d == first)
    other = "".join(f"; {m}: {d!r}" for m, d in users if d != first)
    return {"shown_default": first, "note": f"default of {same}{other}"}


def _build() -> type:
    fields: list[Any] = [("name", str, dataclasses.field(default="sfa"))]
    users = _users()
    for p in _union().values():
        fields.append(
            (p.name, p.type | None, dataclasses.field(default=None, metadata=_shown(users[p.name])))
        )
    return dataclasses.make_dataclass(
        "MethodConfig",
        fields,
        namespace={
            "__doc__": "The method and its parameters (None = the method's default; `lab sfa methods`).",
            "__module__": __name__,
        },
    )


MethodConfig = _build()
KNOWN = tuple(f.name for f in dataclasses.fields(MethodConfig) if f.name != "name")


def given_params(cfg: Any) -> dict[str, Any]:
    """The parameters set (not None) in a MethodConfig."""
    return {k: getattr(cfg, k) for k in KNOWN if getattr(cfg, k) is not None}


def resolve_method(cfg: Any) -> Any:
    """A copy of `cfg` with the method's defaults filled in; LabError for an unknown method, a parameter the
    method does not use, or a value out of its range."""
    cls = method_class(cfg.name)
    params = {p.name: p for p in cls.params}
    for key, value in given_params(cfg).items():
        if key not in params:
            valid = ", ".join(f"method.{p}" for p in params) or "none"
            raise LabError(
                f"method {cfg.name} does not use method.{key} (its parameters: {valid}; see `lab sfa methods`)"
            )
        params[key].check(cfg.name, value)
    missing = [p.name for p in params.values() if p.name not in KNOWN]
    if missing:
        raise LabError(f"method {cfg.name} declares parameters MethodConfig lacks: {', '.join(missing)}")
    fill = {p.name: p.default for p in params.values() if getattr(cfg, p.name) is None}
    return dataclasses.replace(cfg, **fill) if fill else cfg


def validate_method(cfg: Any) -> None:
    """Check a method's options (see `resolve_method`)."""
    resolve_method(cfg)


def method_config(name: str, **params: Any) -> Any:
    """A resolved MethodConfig: `method_config("sfa", beta=0.3)`."""
    unknown = [k for k in params if k not in KNOWN]
    if unknown:
        raise LabError(f"no method declares a parameter '{unknown[0]}' (known: {', '.join(KNOWN)})")
    return resolve_method(MethodConfig(name=name, **params))


def pick_params(name: str, **candidates: Any) -> dict[str, Any]:
    """The subset of `candidates` that method `name` declares: for code that sets one value for several
    methods at once (a benchmark's shared settings); everything else refuses foreign parameters."""
    own = {p.name for p in method_class(name).params}
    return {k: v for k, v in candidates.items() if k in own}

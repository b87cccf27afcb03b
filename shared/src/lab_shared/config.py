"""Typed configs: dataclasses filled from defaults, a TOML/JSON file, typed CLI values and `key=value` overrides.

Every value is checked against the field's type; an unknown key or a wrong type is a ConfigError that names
the key, e.g. ``config key 'trainer.lr': expected float, got 'abc'``.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from lab_shared.errors import ConfigError

T = TypeVar("T")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def read_config_file(path: str | Path) -> dict:
    """Parse a .toml or .json config file into a dict (ConfigError on anything wrong)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_bytes()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"malformed config file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object at the top level")
    return data


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _coerce(key: str, tp: Any, value: Any, from_text: bool) -> Any:
    """Convert `value` to type `tp`; `from_text` means it came from a `key=value` string."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if type(None) in args:
            if value is None or (from_text and str(value).lower() in ("none", "null", "")):
                return None
        rest = [a for a in args if a is not type(None)]
        errors = []
        for a in rest:
            try:
                return _coerce(key, a, value, from_text)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"config key '{key}': no type fits {_describe(value)}"
        )
    if origin is Literal:
        for choice in args:
            if value == choice or (from_text and str(choice) == str(value)):
                return choice
        raise ConfigError(f"config key '{key}': expected one of {list(args)}, got {_describe(value)}")
    if origin in (list, tuple):
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{key}': expected a list, got {_describe(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key '{key}': expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(key, a, v, from_text) for a, v in zip(args, value))
        item = args[0] if args else Any
        out = [_coerce(key, item, v, from_text) for v in value]
        return tuple(out) if origin is tuple else out
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a table, got {_describe(value)}")
        return _build(tp, value, prefix=key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise ConfigError(f"config key '{key}': expected true/false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text:
            try:
                return int(str(value).replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected int, got {_describe(value)}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_text:
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected float, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{key}': expected a string, got {_describe(value)}")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"config key '{key}': expected a path, got {_describe(value)}")
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type[T], data: Mapping[str, Any], prefix: str = "", base: T | None = None) -> T:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known: {', '.join(sorted(names))})")
    obj = base if base is not None else cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            tp = hints[f.name]
            current = getattr(obj, f.name)
            if dataclasses.is_dataclass(tp) and isinstance(data[f.name], Mapping):
                kwargs[f.name] = _build(tp, data[f.name], prefix + f.name + ".", current)
            else:
                kwargs[f.name] = _coerce(prefix + f.name, tp, data[f.name], from_text=False)
    return dataclasses.replace(obj, **kwargs) if kwargs else obj


def _set_dotted(cls: type, obj: Any, key: str, raw: Any, from_text: bool, prefix: str = "") -> Any:
    head, _, rest = key.partition(".")
    names = {f.name for f in dataclasses.fields(cls)}
    if head not in names:
        raise ConfigError(f"unknown config key '{prefix}{key}' (known: {', '.join(sorted(names))})")
    tp = _hints(cls)[head]
    if rest:
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"unknown config key '{prefix}{key}': '{head}' has no sub-keys")
        value = _set_dotted(tp, getattr(obj, head), rest, raw, from_text, prefix + head + ".")
    else:
        value = _coerce(prefix + key, tp, raw, from_text)
    return dataclasses.replace(obj, **{head: value})


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    values: Mapping[str, Any] | None = None,
) -> T:
    """Defaults <- file at `path` <- typed `values` (None skipped) <- `key=value` overrides."""
    cfg = cls()
    if path is not None:
        cfg = _build(cls, read_config_file(path), base=cfg)
    for key, value in (values or {}).items():
        if value is not None:
            cfg = _set_dotted(cls, cfg, key, value, from_text=isinstance(value, str))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' must look like key=value")
        cfg = _set_dotted(cls, cfg, key.strip(), raw.strip(), from_text=True)
    return cfg


def config_to_dict(cfg: Any) -> dict:
    """A JSON-able dict of a config dataclass (Paths as strings, tuples as lists)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return clean(dataclasses.asdict(cfg))


def validate_range(
    name: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Raise ConfigError unless lo <= value <= hi (open ends if asked)."""
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and (value >= hi if hi_open else value > hi)
    )
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ConfigError(f"{name} must be in {left}{lo}, {hi}{right}, got {value}")

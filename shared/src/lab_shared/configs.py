"""`lab config show | cp`: a command's stock config as TOML or JSON, ready to edit and pass to `--config`.

Packages declare their commands' config dataclasses in the `lab.configs` entry-point group (name: the
command with dots, `sfa.run`; value: `module:Class`), so the core never imports a package by name.
A field whose default is None ("unset": chosen later, e.g. by the method picked) is written as a comment;
it shows what it stands for when the field declares `metadata={"shown_default": value, "note": "..."}`
(`# beta = 0.5  # default of sfa`), else `# key = (unset)`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lab_shared.config import config_to_dict
from lab_shared.errors import LabError
from lab_shared.io import atomic_write_text

GROUP = "lab.configs"


def command_key(words: list[str] | str) -> str:
    """`sfa run`, `sfa.run` and ["sfa", "run"] all name the command `sfa.run`."""
    text = " ".join(words) if isinstance(words, list | tuple) else words
    return ".".join(text.replace(".", " ").split())


def registered() -> dict[str, Any]:
    """{command key: entry point} of every installed package's command configs."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def config_class(command: list[str] | str) -> type:
    """The config dataclass of a command; LabError naming the known commands when there is none."""
    key = command_key(command)
    eps = registered()
    if key not in eps:
        known = ", ".join(k.replace(".", " ") for k in sorted(eps)) or "none installed"
        raise LabError(f"no stock config for `lab {key.replace('.', ' ')}` (commands with one: {known})")
    cls = eps[key].load()
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise LabError(f"`{GROUP}` entry {key} = {eps[key].value} is not a config dataclass")
    return cls


def stock_config(command: list[str] | str) -> dict:
    """The command's default config as a plain dict (Paths as strings)."""
    return config_to_dict(config_class(command)())


def unset_notes(obj: Any, prefix: str = "") -> dict[str, tuple[Any, str]]:
    """{dotted field: (value, note)} of the config instance's fields that declare a `shown_default`."""
    out: dict[str, tuple[Any, str]] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if "shown_default" in f.metadata:
            out[prefix + f.name] = (f.metadata["shown_default"], f.metadata.get("note", ""))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(unset_notes(value, prefix + f.name + "."))
    return out


# ---- TOML (the subset configs need: scalars, lists, nested tables; None left out with a comment) ---------
def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None)
        return "{" + items + "}"
    raise LabError(f"cannot write {v!r} ({type(v).__name__}) as TOML")


def to_toml(data: dict, prefix: str = "", notes: dict[str, tuple[Any, str]] | None = None) -> str:
    """TOML text of a nested dict; None values (unset) become comments, since TOML has no null: the value
    they stand for where `notes` ({dotted key: (value, note)}, see `unset_notes`) has one."""
    lines, tables = [], []
    notes = notes or {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            tables.append((k, v))
        elif v is None and f"{prefix}{_toml_key(k)}" in notes:
            shown, note = notes[f"{prefix}{_toml_key(k)}"]
            lines.append(f"# {_toml_key(k)} = {_toml_value(shown)}" + (f"  # {note}" if note else ""))
        elif v is None:
            lines.append(f"# {_toml_key(k)} = (unset)")
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines)
    for k, v in tables:
        name = f"{prefix}{_toml_key(k)}"
        out += ("\n\n" if out else "") + f"[{name}]\n" + to_toml(v, name + ".", notes)
    return out if prefix else out + "\n"


def render(command: list[str] | str, fmt: str = "toml") -> str:
    """The stock config of `command` as TOML or JSON text."""
    stock = config_class(command)()
    data = config_to_dict(stock)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "toml":
        raise LabError(f"--format must be toml or json, got '{fmt}'")
    head = f"# stock config of `lab {command_key(command).replace('.', ' ')}`; pass it with --config FILE\n"
    return head + to_toml(data, notes=unset_notes(stock))


def copy_config(command: list[str] | str, dest: Path, fmt: str | None = None, force: bool = False) -> Path:
    """Write the stock config to `dest` (format from its suffix unless given); refuses to overwrite."""
    fmt = fmt or ("json" if dest.suffix == ".json" else "toml")
    text = render(command, fmt)  # before touching the file: a bad command writes nothing
    if dest.exists() and not force:
        raise LabError(f"{dest} exists (pass --force to overwrite)")
    return atomic_write_text(dest, text)

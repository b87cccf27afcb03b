from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from lab_shared.config import config_to_dict, load_config, validate_range
from lab_shared.errors import ConfigError


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Cfg:
    name: str = "x"
    beta: float = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    out: Path | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_file_values_overrides_in_order(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('name = "file"\nbeta = 1\n[inner]\nsteps = 20\n')
    cfg = load_config(
        Cfg, f, ["inner.lr=0.5", "sizes=3,4", "flag=true", "out=none"], {"name": "typed", "mode": None}
    )
    assert cfg.name == "typed" and cfg.beta == 1.0 and isinstance(cfg.beta, float)
    assert cfg.inner == Inner(lr=0.5, steps=20)
    assert cfg.sizes == [3, 4] and cfg.flag is True and cfg.out is None and cfg.mode == "a"
    assert config_to_dict(cfg)["inner"] == {"lr": 0.5, "steps": 20}


def test_json_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"mode": "b", "out": "x/y"}')
    cfg = load_config(Cfg, f)
    assert cfg.mode == "b" and cfg.out == Path("x/y")


@pytest.mark.parametrize(
    ("content", "overrides", "message"),
    [
        ("bogus = 1\n", [], "unknown config key 'bogus'"),
        ("[inner]\nlr = 'abc'\n", [], "config key 'inner.lr': expected float"),
        ("steps = [", [], "malformed config file"),
        ("", ["inner.steps=1.5"], "config key 'inner.steps': expected int"),
        ("", ["mode=c"], "expected one of ['a', 'b']"),
        ("", ["inner.nope=1"], "unknown config key 'inner.nope'"),
        ("", ["noequals"], "must look like key=value"),
        ("flag = 'yes'\n", [], "config key 'flag': expected true/false"),
    ],
)
def test_errors_name_the_key(tmp_path, content, overrides, message):
    f = tmp_path / "c.toml"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(Cfg, f, overrides)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Cfg, "/nonexistent/c.toml")


def test_validate_range():
    validate_range("beta", 0.0, 0, 1)
    with pytest.raises(ConfigError, match=r"p must be in \(0, 1\]"):
        validate_range("p", 0.0, 0, 1, lo_open=True)

"""`lab config show sfa run` shows each method parameter's real default (from the method registry), as
comments that load back to the stock config and, uncommented for the chosen method, to its resolved one."""

import re
import tomllib

from typer.testing import CliRunner

from lab_sfa.methods.config import MethodConfig, resolve_method
from lab_sfa.methods.registry import method_class, method_names
from lab_sfa.run_config import RunConfig
from lab_shared.cli import app
from lab_shared.config import load_config


def _show() -> str:
    out = CliRunner().invoke(app, ["config", "show", "sfa", "run"])
    assert out.exit_code == 0, out.output
    return out.output


def test_method_parameters_show_their_declared_defaults(tmp_path):
    text = _show()
    method = text.split("[method]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert method[0] == 'name = "sfa"' and "(unset)" not in text
    shown = {}
    for line in method[1:]:
        m = re.fullmatch(r"# (\w+) = (.+?)  # default of (.+)", line)
        assert m, line
        shown[m[1]] = (tomllib.loads(f"v = {m[2]}")["v"], m[3])
    declared = {}
    for name in method_names():
        for p in method_class(name).params:
            declared.setdefault(p.name, []).append((name, p.default))
    assert set(shown) == set(declared)
    for key, users in declared.items():
        value, note = shown[key]
        assert value == users[0][1] and type(value) is type(users[0][1])
        for m, default in users:  # every method using it is named, with its own default where it differs
            assert m in note and (default == value or f"{m}: {default!r}" in note)
    # as shown it loads to the stock config; the chosen method's lines uncommented give its resolved config
    (tmp_path / "a.toml").write_text(text)
    assert load_config(RunConfig, tmp_path / "a.toml") == RunConfig()
    own = {p.name for p in method_class("sfa").params}
    lines = [
        ln[2:] if ln.startswith("# ") and ln[2:].split(" ")[0] in own else ln for ln in text.splitlines()
    ]
    (tmp_path / "b.toml").write_text("\n".join(lines) + "\n")
    assert load_config(RunConfig, tmp_path / "b.toml").method == resolve_method(MethodConfig(name="sfa"))

"""No import cycles inside any of the four packages.

The graph is read from the source with `ast` (nothing is imported): an edge a -> b for every
`import`/`from ... import` of a module of the same package, at module level *and* inside functions (a
function-level import that closes a circle is still a circle, it only hides at import time; both cycles
once found here, `schedulers -> agents.policy -> features -> schedulers` and `sequences -> lm.taskfile ->
sequences`, went through one). Imports under `if TYPE_CHECKING:` are ignored.

Module-level imports must be acyclic with no exception. A few function-level imports that dispatch to an
optional part are tolerated (LAZY_DISPATCH below, each named); every other cycle fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "lab_shared": ROOT / "shared" / "src",
    "lab_sfa": ROOT / "packages" / "sfa" / "src",
    "lab_transcendence": ROOT / "packages" / "transcendence" / "src",
    "lab_learnsched": ROOT / "packages" / "learnsched" / "src",
}

# (importer, imported): function-level imports that close a circle, tolerated until their owners split them.
LAZY_DISPATCH = {
    ("lab_transcendence.train", "lab_transcendence.position_train"),  # --model position
    ("lab_transcendence.synth", "lab_transcendence.presets"),
    ("lab_transcendence.transcend", "lab_transcendence.pool"),  # --design pool
    ("lab_transcendence.tokenizer", "lab_transcendence.vocab"),  # load_tokenizer("vocab", FOLDER)
    ("lab_transcendence.arena_tasks", "lab_transcendence.transcend"),  # a worker builds its player
}


def modules(src: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    out = {}
    for f in sorted((src / package).rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _walk(node: ast.AST, lazy: bool):
    """Import nodes under `node`, skipping `if TYPE_CHECKING:` bodies (and function bodies unless lazy)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for s in child.orelse for n in _walk_stmt(s, lazy))
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and not lazy:
            continue
        else:
            yield from _walk(child, lazy)


def _walk_stmt(stmt: ast.stmt, lazy: bool):
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        yield stmt
    else:
        yield from _walk(stmt, lazy)


def imports(mods: dict[str, tuple[Path, bool]], name: str, lazy: bool) -> set[str]:
    """The package's modules that module `name` imports."""
    path, is_pkg = mods[name]
    found = set()
    for node in _walk(ast.parse(path.read_text(), str(path)), lazy):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in mods}
            continue
        if node.level:  # relative import
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for a in node.names:
            if f"{module}.{a.name}" in mods:  # `from pkg import submodule`
                found.add(f"{module}.{a.name}")
            elif module in mods:
                found.add(module)
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a list of modules, first repeated at the end) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; package graphs are small enough to recurse
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(c)) for c in comps]


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A concrete circle through the component, for a readable failure message."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(graph[path[-1]] & comp)
        back = [w for w in nxt if w in seen]
        if back:
            return path[path.index(back[0]) :] + [back[0]]
        path.append(nxt[0])
        seen.add(nxt[0])


def import_graph(src: Path, package: str, lazy: bool, allowed=frozenset()) -> dict[str, set[str]]:
    mods = modules(src, package)
    return {m: {t for t in imports(mods, m, lazy) if (m, t) not in allowed} for m in mods}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_module_level_imports_are_acyclic(package):
    found = cycles(import_graph(PACKAGES[package], package, lazy=False))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_function_level_imports_close_no_cycle(package):
    found = cycles(import_graph(PACKAGES[package], package, lazy=True, allowed=LAZY_DISPATCH))
    assert not found, "import cycles (counting imports inside functions): " + "; ".join(
        " -> ".join(c) for c in found
    )


def test_the_checker_sees_function_level_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "agents").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "agents" / "__init__.py").write_text("")
    (pkg / "schedulers.py").write_text("def make():\n    from pkg.agents.policy import load\n")
    (pkg / "agents" / "policy.py").write_text("from ..features import F\n")
    (pkg / "features.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.x import y\n"
        "from pkg import schedulers\n"
    )
    assert cycles(import_graph(tmp_path, "pkg", lazy=False)) == []
    assert cycles(import_graph(tmp_path, "pkg", lazy=True)) == [
        ["pkg.agents.policy", "pkg.features", "pkg.schedulers", "pkg.agents.policy"]
    ]
    (pkg / "schedulers.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.agents.policy\n"
    )
    assert cycles(import_graph(tmp_path, "pkg", lazy=True)) == []

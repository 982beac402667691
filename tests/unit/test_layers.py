"""The package is built in layers: a module imports only from its own package or from layers below it,
and no two modules import each other, directly or round a loop (issue 22).

Every ``import`` statement counts, also the ones inside functions (they run as soon as the function does).
The table is the one ``docs/architecture.md`` draws.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "vqalib"

#: Layer of each subpackage, lowest first; modules directly in ``vqalib/`` (the command line, the
#: notebook runner) are the top layer. Packages on one rank are peers and must not import each other.
LAYERS: dict[str, int] = {
    "core": 0,
    "schema": 1, "video": 1,
    "method": 2, "data": 2,
    "model": 3,
    "eval": 4,
    "train": 5,
    "inference": 6,
    "report": 7, "teaching": 7,
}
TOP = max(LAYERS.values()) + 1


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def vqalib_imports(path: Path) -> set[str]:
    """The vqalib modules ``path`` imports (``from vqalib.a import b`` counts ``vqalib.a.b`` when that is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "vqalib")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "vqalib":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in MODULES else node.module)
    return out


FILES = sorted(PKG.rglob("*.py"))
MODULES = {module_name(f) for f in FILES}


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] not in LAYERS):
        return "vqalib", TOP
    return parts[1], LAYERS[parts[1]]


def test_every_subpackage_has_a_layer():
    packages = {f.parent.name for f in FILES if f.parent != PKG}
    assert packages == set(LAYERS), f"add the new package to LAYERS (and docs/architecture.md): {packages ^ set(LAYERS)}"


@pytest.mark.parametrize("path", FILES, ids=lambda f: module_name(f))
def test_imports_only_from_below(path):
    me = module_name(path)
    pkg, rank = layer_of(me)
    wrong = []
    for other in sorted(vqalib_imports(path)):
        opkg, orank = layer_of(other)
        if other == "vqalib" or opkg == pkg:
            continue
        if orank >= rank:
            wrong.append(f"{other} (layer {opkg}, rank {orank})")
    assert not wrong, f"{me} (layer {pkg}, rank {rank}) imports from its own rank or above: {wrong}"


def test_no_import_cycles():
    graph = {module_name(f): {m for m in vqalib_imports(f) if m in MODULES and m != module_name(f)} for f in FILES}
    # a package's __init__ is imported with any of its modules; it may re-export them (not a cycle of code)
    for m in graph:
        graph[m] = {o for o in graph[m] if not (o.startswith(m + ".") and m in {module_name(f) for f in FILES if f.name == "__init__.py"})}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str, counter=[0]) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_check_sees_a_violation(tmp_path):
    """The parser finds imports inside functions, the kind that made the old cycles."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from vqalib.train.common import read_manifest\n    import vqalib.model.loading as m\n")
    assert vqalib_imports(f) == {"vqalib.train.common", "vqalib.model.loading"}


@pytest.mark.parametrize("old", ["aso", "train.report", "models", "scoring"])
def test_old_module_paths_still_import(old):
    """User code written against 0.1 (``from vqalib import aso``) keeps working, with a warning that names the new path."""
    import importlib
    import sys

    import vqalib

    targets = [importlib.import_module("vqalib." + t) for t in vqalib.MOVED_MODULES[old]]
    sys.modules.pop("vqalib." + old, None)
    with pytest.warns(DeprecationWarning, match=targets[0].__name__):
        mod = importlib.import_module("vqalib." + old)
    if len(targets) == 1:
        assert mod is targets[0]
    else:  # split module: every public name of every part is there, as the same object
        for t in targets:
            for name in (n for n in vars(t) if not n.startswith("_") and callable(getattr(t, n))):
                assert getattr(mod, name) is getattr(t, name)


def test_moved_table_names_real_modules():
    import vqalib

    for old, new in vqalib.MOVED_MODULES.items():
        assert old not in {m[len("vqalib."):] for m in MODULES}, f"vqalib.{old} exists again: drop it from MOVED_MODULES"
        assert all(f"vqalib.{t}" in MODULES for t in new), (old, new)

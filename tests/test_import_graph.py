"""No import circle in the package: every import counts (top level, under ``TYPE_CHECKING``, inside functions).

A circle means two modules cannot be understood, tested or moved apart. The test walks the source (AST, nothing is
imported), finds the strongly connected components of the import graph (Tarjan) and names each circle with the
lines that tie it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import airflow_provider_cftunnel

PACKAGE_DIR = Path(airflow_provider_cftunnel.__file__).parent

#: Circles known and owned elsewhere, each to be removed with the change that breaks it (none left: issue 19
#: broke models <-> rules).
KNOWN: set[frozenset[str]] = set()

#: An edge: (importing module, imported module) -> the lines of the importing file that make it.
Edges = dict[tuple[str, str], list[int]]


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at ``path`` in the package whose directory is ``root``."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> Iterable[tuple[str, int]]:
    """Yield ``(imported module, line)`` for every import of a module of ``known`` in ``source``.

    ``from pkg import name`` names the submodule ``pkg.name`` when there is one, else ``pkg`` itself. A call
    ``import_module("a.b")`` with a constant name counts too.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}", node.lineno
                elif base in known:
                    yield base, node.lineno
        elif isinstance(node, ast.Call) and _imported_by_call(node) in known:
            yield str(_imported_by_call(node)), node.lineno


def _imported_by_call(call: ast.Call) -> object:
    """The constant module name of an ``import_module("...")`` call, else ``None``."""
    name = getattr(call.func, "attr", getattr(call.func, "id", ""))
    if name == "import_module" and call.args and isinstance(call.args[0], ast.Constant):
        return call.args[0].value
    return None


def import_graph(root: Path) -> Edges:
    """Every import between the modules of the package at ``root``."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    edges: Edges = {}
    for module, path in files.items():
        for target, line in imports_of(path.read_text(), module, path.name == "__init__.py", set(files)):
            if target != module:
                edges.setdefault((module, target), []).append(line)
    return edges


def circles(edges: Iterable[tuple[str, str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan), each a circle of imports."""
    graph: dict[str, list[str]] = {}
    for source, target in edges:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(circle: frozenset[str], edges: Mapping[tuple[str, str], list[int]]) -> str:
    """One circle, with the import lines that tie it: ``a -> b (a.py lines 3, 40)``."""
    ties = [
        f"  {source} -> {target} (lines {', '.join(map(str, sorted(set(lines))))})"
        for (source, target), lines in sorted(edges.items())
        if source in circle and target in circle
    ]
    return "circle of " + ", ".join(sorted(circle)) + ":\n" + "\n".join(ties)


def test_no_import_circle() -> None:
    edges = import_graph(PACKAGE_DIR)
    new = [circle for circle in circles(edges) if circle not in KNOWN]
    assert not new, "import circles (move the shared names to a module both can import):\n" + "\n".join(
        describe(circle, edges) for circle in new
    )


def test_the_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A package whose circles hide under TYPE_CHECKING, in a function and behind a relative import."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n")
    (root / "b.py").write_text("def f():\n    from pkg import a\n")
    (root / "sub" / "__init__.py").write_text("import importlib\nimportlib.import_module('pkg.sub.c')\n")
    (root / "sub" / "c.py").write_text("from . import d\nfrom .. import a\n")
    (root / "sub" / "d.py").write_text("from pkg.sub import VALUE\n")
    edges = import_graph(root)
    assert set(edges) == {
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.a"),
        ("pkg.sub", "pkg.sub.c"),
        ("pkg.sub.c", "pkg.sub.d"),
        ("pkg.sub.c", "pkg.a"),
        ("pkg.sub.d", "pkg.sub"),
    }
    assert sorted(map(sorted, circles(edges))) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.c", "pkg.sub.d"]]
    assert describe(frozenset({"pkg.a", "pkg.b"}), edges) == (
        "circle of pkg.a, pkg.b:\n  pkg.a -> pkg.b (lines 3)\n  pkg.b -> pkg.a (lines 2)"
    )

"""Dependencies between ``monai_ssl`` subpackages run one way: the import graph between subpackages (every
``import`` / ``from ... import`` in every module, function-level ones included) has no cycle, and nothing below
``apps`` imports it."""

from __future__ import annotations

import ast
import importlib
import itertools
from pathlib import Path

import pytest

import monai_ssl

ROOT = Path(monai_ssl.__file__).resolve().parent


def _subpackages() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file())


def _imported_modules(path: Path, package: list[str]) -> list[str]:
    """Absolute names of the modules ``path`` imports (``package``: the dotted package holding ``path``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.append(node.module or "")
                continue
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                names.append(".".join([*base, node.module]))
            else:  # from . import x, y
                names += [".".join([*base, alias.name]) for alias in node.names]
    return names


def subpackage_graph() -> dict[str, dict[str, list[str]]]:
    """``{subpackage: {imported subpackage: [importing files]}}`` between ``monai_ssl`` subpackages."""
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in _subpackages()}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if len(rel) == 1:  # monai_ssl/__init__.py: the lazy loader, above every subpackage
            continue
        source = rel[0]
        package = ["monai_ssl", *rel[:-1]]
        for name in _imported_modules(path, package):
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "monai_ssl" and parts[1] != source and parts[1] in graph:
                graph[source].setdefault(parts[1], []).append(str(path.relative_to(ROOT)))
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": []}, "b": {}, "c": {"a": [], "b": []}}) is None


def test_no_import_cycle_between_subpackages():
    graph = subpackage_graph()
    cycle = find_cycle(graph)
    if cycle:
        edges = [f"{a} -> {b} ({', '.join(sorted(set(graph[a][b])))})" for a, b in itertools.pairwise(cycle)]
        pytest.fail("import cycle between monai_ssl subpackages:\n  " + "\n  ".join(edges))


def test_nothing_below_apps_imports_it():
    users = {name: files for name, deps in subpackage_graph().items() for dep, files in deps.items() if dep == "apps"}
    assert not users, f"apps is the top layer; imported by {users}"


@pytest.mark.parametrize("name", _subpackages())
def test_each_subpackage_imports_alone(name):
    """Every subpackage imports on its own (in this process; the lazy loader of ``monai_ssl`` resolves it)."""
    module = importlib.import_module(f"monai_ssl.{name}")
    assert getattr(monai_ssl, name) is module

"""The package's imports run one way: every module of archsearch/ and blocks/ belongs to a layer of the table below,
imports only from its own layer or lower ones, and no chain of imports comes back to where it started. Imports are
read from the source with ast, those inside functions (the lazy ones) included."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A name is a module or a package (all of it); the package archsearch itself is its lazy public API.
LAYERS = (
    ("blocks: torch and the standard library only (export copies them as source)", ("blocks",)),
    ("base: errors, located YAML, settings, the published tables' reader; no torch", (
        "archsearch.errors", "archsearch.yamlloc", "archsearch.progress", "archsearch.task_and_train", "archsearch.coerce",
        "archsearch.results_tables")),
    ("compiler: spec → checked, costed IR; no tensor", (
        "archsearch.spec", "archsearch.ir", "archsearch.registry", "archsearch.build", "archsearch.passes",
        "archsearch.compiler")),
    ("model and data: the module, its measurements, tasks", (
        "archsearch.runtime", "archsearch.lower", "archsearch.flops", "archsearch.graph_step", "archsearch.decode",
        "archsearch.measure", "archsearch.testing", "archsearch.data", "archsearch.tasks")),
    ("run: one training run of one spec", (
        "archsearch.context", "archsearch.loss_queue", "archsearch.train", "archsearch.saved", "archsearch.experiment",
        "archsearch.profile")),
    ("search: studies, their run folders and reports", ("archsearch.search",)),
    ("after a search: export, ladders", ("archsearch.export", "archsearch.ladder")),
    ("shell: the command line and the public API", ("archsearch.cli", "archsearch.cli_types", "archsearch.cli_models",
                                                     "archsearch.cli_studies", "archsearch.__main__", "archsearch")),
)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in ("archsearch", "blocks"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def layer_of(module: str) -> int | None:
    """The layer of the longest name of the table that is the module or a package holding it."""
    best = None
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (module.startswith(name + ".") and name != "archsearch"):
                if best is None or len(name) > len(best[1]):
                    best = (i, name)
    return best[0] if best else None


def _targets(module: str, node, is_package: bool) -> list[str]:
    """The package modules an import statement names: `from pkg import sub` names pkg.sub when that is a module,
    else pkg (an attribute of its __init__)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".")[:len(module.split(".")) - node.level + is_package]
            base = ".".join(parts + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:  # `import a.b.c` of something inside a module: the module
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(MODULES)
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node, path.name == "__init__.py"):
                    g.add_edge(module, target, line=node.lineno)
    return g


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) is None] == []


def test_no_import_from_a_lower_layer_into_a_higher_one():
    g = import_graph()
    up = [f"{a} (layer {layer_of(a)}, line {g.edges[a, b]['line']}) imports {b} (layer {layer_of(b)})"
          for a, b in g.edges if layer_of(b) is not None and layer_of(a) is not None and layer_of(b) > layer_of(a)]
    assert not up, "\n".join(up)


def test_no_import_circle():
    g = import_graph()
    circles = sorted(" → ".join(c + [c[0]]) for c in nx.simple_cycles(g))
    assert not circles, "\n".join(circles)


@pytest.mark.parametrize("source, edge", [
    ("from . import b\n", ("pkg.a", "pkg.b")),
    ("from .b import f\n", ("pkg.a", "pkg.b")),
    ("def f():\n    from ..top import g\n", ("pkg.a", "top")),
    ("from pkg import thing\n", ("pkg.a", "pkg")),
])
def test_the_walk_reads_relative_and_lazy_imports(source, edge, monkeypatch):
    monkeypatch.setitem(MODULES, "pkg", Path("pkg/__init__.py"))
    monkeypatch.setitem(MODULES, "pkg.a", Path("pkg/a.py"))
    monkeypatch.setitem(MODULES, "pkg.b", Path("pkg/b.py"))
    monkeypatch.setitem(MODULES, "top", Path("top.py"))
    found = {("pkg.a", t) for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
             for t in _targets("pkg.a", node, False)}
    assert edge in found

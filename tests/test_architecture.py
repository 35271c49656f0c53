"""The layers of docs/ARCHITECTURE.md, kept by a test: stages never reach into the database,
the web or the command line, the simulator never imports the pipeline, and no two modules
import each other (directly or round a longer cycle), at module level or inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "clinepipe"

#: the numeric stages: arrays and small dataclasses in and out, no database, no web, no CLI
STAGES = ("ingest", "headers", "ccd", "astrometry", "photometry", "catalogs", "calibrate")
#: what a stage may never import
EDGES = ("clinepipe.store", "clinepipe.web", "clinepipe.cli", "clinepipe.run",
         "clinepipe.products", "clinepipe.demo")
#: stage modules that still take an ORM row, with why; each is a debt, not a licence
KNOWN_DEBTS: dict[str, tuple[str, ...]] = {}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every clinepipe import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [(n, id(node) in top) for n in names if n.startswith("clinepipe")]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append(("<relative>", id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names if a.name.startswith("clinepipe")]
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def _resolve(name: str) -> str | None:
    """The module an imported name lives in (``pkg.mod.func`` -> ``pkg.mod``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


@pytest.mark.parametrize("stage", STAGES)
def test_stages_never_import_the_edges(stage):
    bad = []
    for mod, path in MODULES.items():
        if not mod.startswith(f"clinepipe.{stage}"):
            continue
        allowed = KNOWN_DEBTS.get(mod, ())
        for name, _ in _imports(path):
            target = _resolve(name) or name
            if target.startswith(EDGES) or target.startswith("clinepipe.variability"):
                if not target.startswith(allowed) or not allowed:
                    bad.append(f"{mod} imports {target}")
    assert not bad, "\n".join(bad)


def test_package_imports_are_absolute():
    """One spelling of every import (the simulator keeps its own relative ones: it is a
    separate world that never imports the pipeline)."""
    bad = [mod for mod, path in MODULES.items() if not mod.startswith("clinepipe.simulate")
           and any(name == "<relative>" for name, _ in _imports(path))]
    assert not bad, f"relative imports in {bad}"


def test_no_import_cycles():
    """No module reaches itself through imports (module-level or deferred: a function-level
    import round a cycle is the same tangle, only hidden)."""
    graph = {m: {t for n, _ in _imports(p) if (t := _resolve(n)) and t != m and t in MODULES
                 and not MODULES[t].name == "__init__.py"}
             for m, p in MODULES.items()}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)

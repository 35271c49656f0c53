"""Every public top-level function and class in src/clinepipe has a docstring (issue 17 item 7),
kept by a test so that a new one without cannot slip in. Read with ast, not imported, so a
module that needs an optional dependency is still checked; migrations are Alembic's."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "clinepipe"
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _undocumented(path: Path, root: Path = PACKAGE) -> list[str]:
    """``path:line name`` (relative to ``root``) for each public top-level def/class in
    ``path`` without a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(root)
    return [f"{rel}:{node.lineno} {node.name}" for node in tree.body
            if isinstance(node, DEFINITIONS) and not node.name.startswith("_")
            and not (ast.get_docstring(node) or "").strip()]


def test_every_public_function_and_class_has_a_docstring():
    files = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.relative_to(PACKAGE).parts)
    assert len(files) > 50, f"found only {len(files)} modules under {PACKAGE}"
    missing = [entry for path in files for entry in _undocumented(path)]
    assert not missing, "public functions/classes without a docstring:\n" + "\n".join(missing)


def test_the_check_names_public_definitions_without_a_docstring(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        'def bare(x):\n    return x\n\n\n'
        'def _private(x):\n    return x\n\n\n'
        'class Bare:\n    x: int = 0\n\n\n'
        'class Told:\n    """Has one."""\n\n\n'
        'async def fetch():\n    ""\n\n\n'
        'def outer():\n    """Has one."""\n    def inner():\n        pass\n',
        encoding="utf-8")
    assert _undocumented(module, tmp_path) == ["sample.py:1 bare", "sample.py:9 Bare",
                                                "sample.py:17 fetch"]

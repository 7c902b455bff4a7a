"""Layering rules: the logical layer imports no torch; kernels never import the logical layer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGICAL = [
    "errors",
    "nodes",
    "targets",
    "methods",
    "operators",
    "planner",
    "expr",
    "graph",
    "columns",
    "relational",
    "joins",
    "describe",
    "syntax",
    "parse",
    "query_errors",
]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_logical_modules_do_not_import_torch():
    for name in LOGICAL:
        imported = _imports(ROOT / "algebra" / f"{name}.py")
        assert not {i for i in imported if i.split(".")[0] == "torch"}, name


def test_kernels_do_not_import_the_logical_layer():
    for path in (ROOT / "kernels").glob("*.py"):
        imported = _imports(path)
        assert not {i for i in imported if i.startswith("algebra")}, path.name


def test_kernel_plan_is_torch_free():
    # The planner imports the physical plan, so it must stay free of torch as well.
    assert "torch" not in _imports(ROOT / "kernels" / "plan.py")

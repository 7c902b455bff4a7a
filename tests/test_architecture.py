"""The package order: a query flows one way, and imports only go down the stages.

api -> ir (logical nodes) -> optimizer -> physical plan -> kernels -> results (xarray), with
lang (the query language) and results beside; kernels never import algebra; no module
imports another at function level (only optional heavy libraries may load lazily); no
import cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "algebra"
KERNELS = ROOT / "kernels"

# What each part of ``algebra`` may import from the rest of the package.
ALLOWED = {
    "errors": set(),
    "ir": {"errors", "kernels.plan"},
    "config": {"errors", "ir"},
    "lang": {"errors", "ir"},
    "optimizer": {"errors", "config", "ir", "kernels"},
    "results": {"errors", "config", "ir", "kernels"},
    "runtime": {"errors", "config", "ir", "optimizer", "results", "kernels"},
    "api": {"errors", "config", "ir", "lang", "optimizer", "runtime", "results", "kernels"},
    "cli": {"errors", "config", "ir", "lang", "api", "results", "kernels", "root", "demo", "web"},
    # The demo uses the library as a user would; nothing but the command line imports it.
    "demo": {"errors", "config", "api", "results", "root"},
    # The interactive page: a leaf over the public API (``algebra``), the query language,
    # the command line's loaders and the demo's models and data; only the CLI's ``serve``
    # imports it.
    "web": {"errors", "lang", "cli", "demo", "root"},
}
# Third-party libraries that may be imported inside a function: optional, or heavy and
# needed by one feature only.
LAZY = {
    "matplotlib",
    "lark",
    "dask",
    "distributed",
    "zarr",
    "networkx",
    "sklearn",
    "tqdm",
    "open_clip",
    "cloudpickle",
    # The page's server: the optional extra ``ialgebra[web]``.
    "starlette",
    "uvicorn",
}
TORCH_FREE = ("ir", "optimizer", "lang", "config", "errors")


def _module_name(path: Path) -> str:
    if path.is_relative_to(KERNELS):
        parts = ("algebra", "kernels", *path.relative_to(KERNELS).with_suffix("").parts)
    else:
        parts = ("algebra", *path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _files() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *KERNELS.glob("*.py")])


def _imports(path: Path, source: str | None = None) -> list[tuple[str, bool]]:
    """``(absolute module imported, at function level)`` for every import in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text() if source is None else source)
    nested = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
    }
    checking = {  # ``if TYPE_CHECKING:`` blocks import nothing at run time
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in nested) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from .views import source_of`` and ``from . import plot`` alike: the name may
            # be a module; the graph trims it to the module that exists.
            found += [(f"{module}.{a.name}", id(node) in nested) for a in node.names]
    return found


def _part(module: str) -> str:
    """The part of the package a module belongs to: ``ir``, ``api``, ..., ``kernels.plan``
    (the plan's plain data, which logical nodes may read: the plan and the path steps)."""
    parts = module.split(".")
    if parts[1:2] == ["kernels"]:
        return "kernels.plan" if parts[2:3] in (["plan"], ["path_steps"]) else "kernels"
    if len(parts) == 1 or parts[1] in ("__init__", "__main__"):
        return "root"
    return parts[1]


def _internal_graph() -> nx.DiGraph:
    modules = {_module_name(p): p for p in _files()}
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target, _ in _imports(path):
            while target and target not in modules:  # ``algebra.ir.views.source_of``
                target = target.rpartition(".")[0]
            if target and target != name:
                graph.add_edge(name, target)
    return graph


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(_internal_graph()))
    assert not cycles, cycles[:5]


def _upward(path: Path, imports: list[tuple[str, bool]]) -> list[str]:
    part = _part(_module_name(path))
    if part in ("root", "kernels", "kernels.plan"):
        return []
    allowed = ALLOWED[part] | {part}
    if "kernels" in allowed:
        allowed.add("kernels.plan")
    return [t for t, _ in imports if t.startswith("algebra") and _part(t) not in allowed]


def _lazy(imports: list[tuple[str, bool]]) -> list[str]:
    return [t for t, lazy in imports if lazy and t.split(".")[0] not in LAZY]


@pytest.mark.parametrize("path", _files(), ids=lambda p: _module_name(p))
def test_imports_go_down_the_stages(path):
    assert not _upward(path, _imports(path))


@pytest.mark.parametrize("path", _files(), ids=lambda p: _module_name(p))
def test_no_function_level_imports(path):
    assert not _lazy(_imports(path))


def test_kernels_never_import_the_logical_layer():
    for path in KERNELS.glob("*.py"):
        for target, _ in _imports(path):
            assert not target.startswith("algebra") or target.startswith("algebra.kernels"), (
                path.name,
                target,
            )


@pytest.mark.parametrize("part", TORCH_FREE)
def test_logical_parts_do_not_import_torch(part):
    paths = [PACKAGE / f"{part}.py"] if (PACKAGE / f"{part}.py").exists() else []
    for path in paths or sorted((PACKAGE / part).glob("*.py")):
        torch = [t for t, _ in _imports(path) if t.split(".")[0] == "torch"]
        assert not torch, (path, torch)


def test_kernel_plan_is_torch_free():
    # The optimizer builds the physical plan, so it must stay free of torch as well.
    assert not [t for t, _ in _imports(KERNELS / "plan.py") if t.split(".")[0] == "torch"]


def test_nothing_but_the_cli_imports_the_page():
    # algebra.web is a leaf: no part of the engine imports it, only the CLI's serve.
    for path in _files():
        if _part(_module_name(path)) in ("web", "cli"):
            continue
        assert not [t for t, _ in _imports(path) if _part(t) == "web"], path


def test_the_page_server_is_imported_lazily():
    # Starlette and uvicorn are the optional extra: imported inside functions only, so
    # ``ialgebra query`` works without them.
    for path in sorted((PACKAGE / "web").glob("*.py")):
        eager = [
            t
            for t, lazy in _imports(path)
            if not lazy and t.split(".")[0] in ("starlette", "uvicorn")
        ]
        assert not eager, (path, eager)


def test_the_checks_see_a_violation():
    # The rules above can fail: an ir module importing upward, and lazily, is caught.
    probe = PACKAGE / "ir" / "probe.py"
    source = "from ..api.query import Query\n\n\ndef f():\n    from ..runtime import compute\n"
    imports = _imports(probe, source)
    assert _upward(probe, imports) == ["algebra.api.query.Query", "algebra.runtime.compute"]
    assert _lazy(imports) == ["algebra.runtime.compute"]

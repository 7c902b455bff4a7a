"""Every docstring example in the package, and the examples in README and docs, run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import algebra
import algebra.kernels

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
MODULES = sorted(
    ["algebra.kernels"]
    + [
        info.name
        for path, prefix in (
            (algebra.__path__, "algebra."),
            (algebra.kernels.__path__, "algebra.kernels."),  # installed from kernels/
        )
        for info in pkgutil.walk_packages(path, prefix)
        if info.name != "algebra.__main__"
    ]
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = ("algebra", *parts) if parts[0] == "kernels" else parts  # installed there
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = sorted(
    _module_name(p)
    for folder in ("algebra", "kernels")
    for p in (ROOT / folder).rglob("*.py")
    if p.name != "__main__.py"
)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("name", ["algebra", *MODULES])
def test_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS)
    assert result.failed == 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS, encoding="utf-8")
    assert result.failed == 0


def test_every_module_is_found():
    # A folder without __init__.py is a namespace package, which walk_packages skips:
    # its doctests would silently never run.
    assert set(FILES) - {"algebra", *MODULES} == set()


def test_every_public_function_has_an_example():
    missing = []
    for name in ["algebra", *MODULES]:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if callable(obj) and ">>>" not in (obj.__doc__ or ""):
                if isinstance(obj, type):
                    continue  # classes are documented; their public methods are checked below
                missing.append(f"{name}.{attr}")
            if isinstance(obj, type):
                for meth, fn in vars(obj).items():
                    if (
                        not meth.startswith("_")
                        and callable(fn)
                        and ">>>" not in (fn.__doc__ or "")
                    ):
                        missing.append(f"{name}.{attr}.{meth}")
    assert not missing, missing

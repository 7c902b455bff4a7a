"""The docs point at things that exist: relative links (and their anchors), and every
``algebra/...`` or ``kernels/...`` path and ``algebra.x.y`` module they name."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w/.])((?:algebra|kernels|benchmarks|tests)/[\w/.-]*\w)")
MODULE = re.compile(r"(?<![\w.])(algebra(?:\.\w+)+)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_exist(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.exists(), f"{page.name}: link to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: no heading for #{anchor}"


# Files that commands write (ignored by git) may be named before they exist.
GENERATED = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_paths_exist(page):
    for path in set(PATH.findall(page.read_text())) - GENERATED:
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_modules_exist(page):
    for dotted in MODULE.findall(page.read_text()):
        parts = dotted.split(".")
        for end in range(len(parts), 1, -1):  # a module, or a name inside one
            try:
                module = importlib.import_module(".".join(parts[:end]))
            except ModuleNotFoundError:
                continue
            obj = module
            for attr in parts[end:]:
                assert hasattr(obj, attr), f"{page.name} names {dotted}: no {attr}"
                obj = getattr(obj, attr)
            break
        else:
            pytest.fail(f"{page.name} names {dotted}, which is not a module")

"""What loading a ``torch.export`` archive (``.pt2``) would run, found without loading it.

``torch.export.load`` is not a safe reader of untrusted files: torch documents that it
unpickles, and an archive can make it run code in several ways. :func:`archive_risks`
reads the archive as a zip of JSON and raw bytes (never unpickling, never evaluating) and
lists what would run code:

- weights or constants marked ``"use_pickle": true`` (``torch.load(weights_only=False)``),
  pickled opaque or TorchScript objects among the constants, and any embedded
  ``torch.save`` blob (sample inputs, legacy weights and constants, the older archive
  format) that a weights-only load refuses (torch then retries without ``weights_only``);
- compiled AOTInductor code (a shared library);
- symbolic-shape expressions, which torch parses with ``sympy.sympify`` (Python's
  ``eval``): only plain expressions of sympy names, symbols and numbers pass;
- names that end up in the Python source torch generates for the graph (parameter and
  module paths, node names): quotes, backslashes and control characters are refused;
- guard code (Python source that ``ExportedProgram.module()`` compiles).

After loading, :func:`foreign_calls` lists graph calls of anything but torch operators and
the ``operator`` and ``math`` functions that graphs use (a crafted graph can name any
function reachable from the ``torch`` module, ``os.system`` included).

These close the routes known for torch 2.13; they are not a sandbox.
"""

from __future__ import annotations

import io
import json
import math
import operator
import posixpath
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.export.pt2_archive import constants as pt2

__all__ = ["archive_risks", "foreign_calls"]

# Characters that could end a quoted string in generated Python source.
_UNSAFE_NAME = re.compile(r"[\"'\\\x00-\x1f\x7f]")
# Strings that are data, not names: free text, JSON tree specs, string arguments (torch
# writes these into generated code with repr), and expressions (checked on their own).
_NOT_NAMES = {"stack_trace", "in_spec", "out_spec", "as_string", "as_strings", "custom"}
# Tokens of a symbolic-shape expression: numbers, names, quoted symbol names, operators.
_TOKEN = re.compile(
    r"\s+|(?P<number>[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<quoted>'[a-z]+[0-9]+')|[-+*/%(),=<>!&|~^]"
)
# Lower-case names an expression may use besides symbols (s0, u3, ...): sympy's
# assumptions and a few functions. Capitalised names are sympy classes and functions.
_LOWER_NAMES = {
    "positive", "negative", "nonnegative", "nonpositive", "nonzero", "zero", "integer",
    "real", "rational", "finite", "even", "odd", "prime", "commutative", "extended_real",
    "floor", "ceiling", "sqrt", "exp", "log", "oo", "zoo", "nan", "pi", "true", "false",
}  # fmt: skip
_SYMBOL = re.compile(r"[a-z]+[0-9]+")


def archive_risks(path: str | Path) -> list[str]:
    """What loading the ``torch.export`` archive at ``path`` would run, one phrase each.

    An empty list means none of the known routes to running code is present.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> net = torch.nn.Linear(3, 2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     torch.export.save(torch.export.export(net, (torch.ones(1, 3),)), Path(tmp) / "n.pt2")
    ...     archive_risks(Path(tmp) / "n.pt2")
    []
    """
    risks: list[str] = []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if len(names) != len(set(names)):
            # torch's reader and Python's zipfile may pick different copies of a name.
            return ["duplicate entries in the zip archive"]
        for name in names:
            risks += _member_risks(archive, name)
    return list(dict.fromkeys(risks))


def _member_risks(archive: zipfile.ZipFile, name: str) -> list[str]:
    inner = name.split("/", 1)[1] if "/" in name else name  # torch drops the archive root
    base = posixpath.basename(inner)
    if inner.startswith(pt2.AOTINDUCTOR_DIR):
        return ["compiled AOTInductor code"]
    if inner.startswith(pt2.WEIGHTS_DIR) and inner.endswith("weights_config.json"):
        return _payload_risks(_json(archive, name), "weight")
    if inner.startswith(pt2.CONSTANTS_DIR) and inner.endswith("constants_config.json"):
        return _payload_risks(_json(archive, name), "constant")
    if (inner.startswith(pt2.MODELS_DIR) and inner.endswith(".json")) or (
        base == "serialized_exported_program.json"
    ):
        return _program_risks(_json(archive, name))
    blob = inner.endswith((".pt", ".pth", ".pkl")) or base.startswith("serialized_")
    # torch.export torch.load's these: weights-only first, then without it.
    if blob and not _weights_only(archive.read(name)):
        return [f"pickled objects in {inner!r}"]
    return []


def _json(archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(archive.read(name))
    except (ValueError, RecursionError) as e:
        raise ValueError(f"damaged archive entry {name!r}: {e}") from None


def _weights_only(blob: bytes) -> bool:
    if not blob:
        return True
    try:
        torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


def _payload_risks(config: Any, kind: str) -> list[str]:
    risks = _name_risks(config)
    entries = config.get("config", {}) if isinstance(config, dict) else {}
    for fqn, meta in entries.items() if isinstance(entries, dict) else ():
        if not isinstance(meta, dict):
            continue
        path_name = str(meta.get("path_name", ""))
        if path_name.startswith((pt2.CUSTOM_OBJ_FILENAME_PREFIX, pt2.OPAQUE_OBJ_FILENAME_PREFIX)):
            risks.append(f"{kind} {fqn!r} is a pickled object")
        elif meta.get("use_pickle"):
            risks.append(f"{kind} {fqn!r} is pickled (use_pickle)")
    return risks


def _program_risks(program: Any) -> list[str]:
    risks = _name_risks(program)
    for key, value in _items(program):
        if key == "expr_str" and not _plain_expression(value):
            risks.append(f"a symbolic-shape expression that is Python code: {str(value)[:60]!r}")
        elif key == "range_constraints" and isinstance(value, dict):
            bad = [k for k in value if not _plain_expression(k)]
            if bad:
                risks.append(f"a shape constraint that is Python code: {bad[0][:60]!r}")
        elif key == "guards_code" and value:
            risks.append("guard code (Python source)")
    return risks


def _items(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` of the JSON tree's objects, iteratively."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                yield key, value
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _name_risks(tree: Any) -> list[str]:
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        key, node = stack.pop()
        if key in _NOT_NAMES or key in ("expr_str", "guards_code"):
            continue
        if isinstance(node, dict):
            for k, value in node.items():
                if _UNSAFE_NAME.search(k):
                    return [f"a name with quotes or control characters: {k[:60]!r}"]
                stack.append((k, value))
        elif isinstance(node, list):
            stack.extend((key, item) for item in node)
        elif isinstance(node, str) and _UNSAFE_NAME.search(node):
            return [f"a name with quotes or control characters: {node[:60]!r}"]
    return []


def _plain_expression(text: Any) -> bool:
    """Whether ``text`` is an expression of sympy names, symbols and numbers only.

    Examples
    --------
    >>> _plain_expression("Symbol('s31', positive=True, integer=True)")
    True
    >>> _plain_expression("__import__('os').system('ls')")
    False
    """
    if not isinstance(text, str):
        return False
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            return False
        name = match["name"]
        if name is not None and not (
            name[0].isupper() or name in _LOWER_NAMES or _SYMBOL.fullmatch(name)
        ):
            return False
        pos = match.end()
    return True


_ALLOWED_MODULES = {operator.__name__, "_operator", math.__name__}


def foreign_calls(program: torch.export.ExportedProgram) -> list[str]:
    """The functions a loaded program's graphs call that are not torch operators.

    Graphs call torch operators (``torch.ops.*``, higher-order operators) and a few
    ``operator``, ``math`` and ``torch.sym_*`` functions; anything else came from a
    crafted file.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    >>> foreign_calls(torch.export.export(net, (torch.ones(1, 3),)))
    []
    """
    found = []
    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in graph.nodes if isinstance(graph, torch.fx.Graph) else ():
            if node.op == "call_function" and not _operator_like(node.target):
                target = node.target
                found.append(getattr(target, "__qualname__", None) or repr(target)[:60])
    return list(dict.fromkeys(found))


def _operator_like(target: Any) -> bool:
    ops = (torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator)
    if isinstance(target, ops):
        return True
    module = getattr(target, "__module__", None)
    if module in _ALLOWED_MODULES:
        return True
    name = getattr(target, "__name__", "")
    return module == "torch" and name.lstrip("_").startswith("sym_")

"""Completion in the query editor: the words that fit where the cursor is.

The context is read from the words before the cursor: after ``select`` (or ``neurons of``)
the layers of the model bound to the query's first model name; after ``from`` the model
names bound; inside ``from f(`` the input names bound; after ``using`` the methods; inside
``using method(`` its parameters; after ``target`` the targets; in a ``where`` clause the
columns; anywhere else the keywords. Methods and their parameters are read from
``ia.Query``'s own signatures, so the list follows the API.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

import algebra as ia

from ..lang.syntax import COLUMNS, KEYWORDS, quote

_WORD = re.compile(r"[A-Za-z0-9_.']*$")
_TOKENS = re.compile(r"--[^\n]*|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|[A-Za-z0-9_.']+|\S")
_LAYER = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_NOT_METHODS = (
    "identity",
    "antijoin",
    "mistakes",
    "where",
    "window",
    "layer",
    "patch",
    "replace",
    "edit",
)
TARGETS = ("pred", "label", "all", "top")


@functools.cache
def methods() -> dict[str, tuple[str, ...]]:
    """The methods of ``using``, each with its parameters, from ``ia.Query``'s signatures.

    Examples
    --------
    >>> methods()["integrated_gradients"][:3]
    ('steps', 'method', 'baseline')
    >>> "shapley" in methods(), "counterfactual_neurons" in methods()
    (True, True)
    """
    found = {}
    for name, fn in inspect.getmembers(ia.Query, inspect.isfunction):
        if name.startswith("_") or name in _NOT_METHODS:
            continue
        params = list(inspect.signature(fn).parameters)[1:]
        if params[:1] in (["target"], ["cls"]):
            # ``neurons of <layer>`` names the layer of counterfactual neurons, not a parameter
            found[name] = tuple(
                p for p in params[1:] if (name, p) != ("counterfactual_neurons", "layer")
            )
    return found


def layer_text(name: str) -> str:
    """A layer's name as a query writes it: quoted unless it is a plain dotted name.

    Examples
    --------
    >>> layer_text("block1.0"), layer_text("my layer"), layer_text("select")
    ('block1.0', "'my layer'", "'select'")
    """
    return name if _LAYER.fullmatch(name) and name.lower() not in KEYWORDS else quote(name)


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKENS.findall(text) if not t.startswith("--")]


def _context(before: list[str]) -> tuple[str, str | None]:
    """What is expected after the tokens ``before``: a kind and, for parameters, the method."""
    low = [t.lower() for t in before]
    last = low[-1] if low else ""
    if last in ("select",) or low[-2:] == ["neurons", "of"]:
        return "layer", None
    if last == "from":
        return "model", None
    if last == "(" and len(low) >= 3 and low[-3] == "from":
        return "input", None
    if last == "using":
        return "method", None
    if last in ("(", ",") and len(low) >= 2:
        depth = 0
        for i in range(len(low) - 1, -1, -1):  # the call this argument list belongs to
            if low[i] == ")":
                depth += 1
            elif low[i] == "(":
                if depth == 0:
                    if i >= 2 and low[i - 2] == "using":
                        return "param", before[i - 1]
                    break
                depth -= 1
    if last == "target":
        return "target", None
    clause = next(
        (t for t in reversed(low) if t in ("where", "using", "target", "select", "from")), ""
    )
    if clause == "where" and last in ("where", "and", "or", "not", "("):
        return "column", None
    return "keyword", None


def complete(
    text: str, cursor: int, models: dict[str, ia.Model], inputs: list[str]
) -> dict[str, Any]:
    """Completions at ``cursor`` in ``text``: ``{"start", "end", "kind", "options"}``; the
    options replace ``text[start:end]`` (the word being typed).

    Parameters
    ----------
    text : str
        The query being edited.
    cursor : int
        The cursor's offset in ``text``.
    models : dict
        The query's model names and the models bound to them (their layers complete
        ``select``).
    inputs : list of str
        The input names bound.

    Examples
    --------
    >>> import torch
    >>> from collections import OrderedDict
    >>> net = torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(1, 2, 3), flat=torch.nn.Flatten()))
    >>> m = {"f": ia.model(net)}
    >>> complete("select co", 9, m, ["x"])["options"]
    ['conv']
    >>> complete("select * from f(x) using sha", 28, m, ["x"])["options"]
    ['shapley']
    >>> complete("select * from f(x) using shapley(sa", 35, m, ["x"])["options"]
    ['samples']
    >>> complete("select * from f(", 16, m, ["x", "x'"])["options"]
    ['x', "x'"]
    >>> complete("select * from f(x) where pr", 27, m, ["x"])["options"]
    ['pred']
    >>> c = complete("select * from f(x) wh", 21, m, ["x"]); c["options"], c["start"], c["end"]
    (['where'], 19, 21)
    """
    cursor = max(0, min(cursor, len(text)))
    head = text[:cursor]
    word = _WORD.search(head)
    prefix = word.group(0) if word else ""
    start = cursor - len(prefix)
    tail = re.match(r"[A-Za-z0-9_.']*", text[cursor:])
    end = cursor + (len(tail.group(0)) if tail else 0)
    kind, method = _context(_tokens(text[:start]))
    first = next(iter(models.values()), None)
    if kind == "layer":
        layers = [] if first is None else [layer_text(n) for n in first.layer_names]
        options = ["*", "neurons", *layers]
    elif kind == "model":
        options = list(models)
    elif kind == "input":
        options = list(inputs)
    elif kind == "method":
        options = list(methods())
    elif kind == "param":
        options = list(methods().get(method or "", ()))
    elif kind == "target":
        options = list(TARGETS)
    elif kind == "column":
        options = [*COLUMNS, "mistakes", "not"]
    else:
        options = list(KEYWORDS)
    low = prefix.lower()
    matches = [o for o in options if o.lower().startswith(low) and o.lower() != low]
    return {"start": start, "end": end, "kind": kind, "options": matches[:50]}

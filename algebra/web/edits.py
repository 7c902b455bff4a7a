"""Rewrites of the query text that the page's gestures make: a window dragged on a heat
map (drill-down), and a join or anti-join with a second sample or model.

Both work on the syntax tree and print it back (``Select.to_text()``), so the editor always
holds the query that runs, in the canonical form of the language.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..lang.parse import parse_query
from ..lang.syntax import Join, Name, Select, Window
from .failures import WebError


def _window(value: Any) -> Window:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise WebError(400, f"window: expected [r0, r1, c0, c1], four integers >= 0; got {value!r}")
    return Window(*value)


def refine(text: str, window: Any) -> str:
    """The query narrowed to ``window`` (rows ``r0:r1``, columns ``c0:c1``), inside its
    last window: a step of a drill-down. Sub-queries that share the outer windows (an
    anti-join's other side must) are narrowed alike.

    Examples
    --------
    >>> refine("select * from f(x) using saliency", [0, 16, 8, 24])
    'select * from f(x) using saliency where [0, 16, 8, 24]'
    >>> refine("select * from f(x) where [0, 16, 8, 24] and correct", [4, 30, 0, 12])
    'select * from f(x) where [0, 16, 8, 24] and [4, 16, 8, 12] and correct'
    >>> refine("select * from f(x) left join (select * from f(y)) where [0, 8, 0, 8]", [2, 4, 2, 4])
    'select * from f(x) left join (select * from f(y) where [0, 8, 0, 8] and [2, 4, 2, 4]) where [0, 8, 0, 8] and [2, 4, 2, 4]'
    >>> refine("select * from f(x) where [0, 8, 0, 8]", [10, 12, 0, 4])
    Traceback (most recent call last):
    algebra.web.failures.WebError: window: [10, 12, 0, 4] does not overlap the last window [0, 8, 0, 8]
    """
    tree = parse_query(text)
    new = _window(window)
    if tree.windows:
        last = tree.windows[-1]
        inside = Window(max(new.r0, last.r0), min(new.r1, last.r1), max(new.c0, last.c0),
                        min(new.c1, last.c1))  # fmt: skip
        if inside.r0 >= inside.r1 or inside.c0 >= inside.c1:
            raise WebError(
                400,
                f"window: {list(window)} does not overlap the last window "
                f"[{last.r0}, {last.r1}, {last.c0}, {last.c1}]",
            )
        if inside == last:
            return tree.to_text()
        new = inside
    elif new.r0 >= new.r1 or new.c0 >= new.c1:
        raise WebError(400, f"window: {list(window)} is empty; drag over the map")
    windows = (*tree.windows, new)
    joins = tuple(
        dataclasses.replace(j, query=dataclasses.replace(j.query, windows=windows))
        if j.how == "anti" or j.query.windows == tree.windows
        else j
        for j in tree.joins
    )
    return dataclasses.replace(tree, windows=windows, joins=joins).to_text()


def compare(text: str, how: str, model: str | None = None, inputs: str | None = None) -> str:
    """The query combined with the same query on other inputs (``inputs``) or through
    another model (``model``): ``how`` is ``"join"`` (what matters to both) or ``"anti"``
    (the anti-join: what tells them apart). Any join the query had is replaced.

    Examples
    --------
    >>> compare("select * from f(x) using saliency", "join", inputs="x'")
    "select * from f(x) join (select * from f(x')) using saliency"
    >>> compare("select * from f(x) where [0, 8, 0, 8]", "anti", model="g")
    'select * from f(x) left join (select * from g(x) where [0, 8, 0, 8]) where [0, 8, 0, 8]'
    >>> compare("select * from f(x)", "outer", inputs="y")
    Traceback (most recent call last):
    algebra.web.failures.WebError: how: expected 'join' or 'anti'; got 'outer'
    """
    if how not in ("join", "anti"):
        raise WebError(400, f"how: expected 'join' or 'anti'; got {how!r}")
    if (model is None) == (inputs is None):
        raise WebError(400, "compare: name either a second model or second inputs")
    tree = parse_query(text)
    if tree.neurons:
        raise WebError(400, "compare: select neurons takes no joins")
    layer = tree.layer if model is None else None  # two models compare at the input
    sub = Select(
        layer, Name(model) if model else tree.model, Name(inputs) if inputs else tree.inputs,
        windows=tree.windows,
    )  # fmt: skip
    join = Join("anti" if how == "anti" else "mean", sub)
    return dataclasses.replace(tree, joins=(join,)).to_text()

"""How deep a query may nest, and how the parser refuses one: at the offending token.

The tree builder (:mod:`algebra.lang.build`) records each node's nesting and tree depth
as it builds it and refuses a query past either limit with a :class:`Problem`, which
:func:`~algebra.lang.parse.parse_query` turns into a ``QueryError`` showing the text.
"""

from __future__ import annotations

import contextvars
from typing import Any, NoReturn

from lark import Token

from .predicates import LEFT_DEEP
from .syntax import Column, Name, Window

#: Deepest nesting accepted: sub-queries (``join``), ``not`` and conditions combined with
#: ``and``/``or`` inside others. A flat chain ``a or b or c`` is one level.
MAX_DEPTH = 200
#: Deepest syntax tree accepted. ``and``/``or`` nodes are binary, so a chain of ``k``
#: terms is ``k - 1`` tree levels, and printing, comparing and walking trees recurse once
#: per level: together with the nesting above, the terms of and/or chains along one
#: branch are bounded by this.
MAX_TREE_DEPTH = 200

# (nesting, tree depth) of each node built in the current parse, by id: nodes are alive
# while the parse runs, so ids are not reused. Per context, so parses in threads are apart.
depths: contextvars.ContextVar[dict[int, tuple[int, int]]] = contextvars.ContextVar("query_depths")


class Problem(Exception):
    """A check failed while building the tree; `parse_query` adds the text."""

    def __init__(self, reason: str, line: int, column: int, hint: str = "") -> None:
        super().__init__(reason)
        self.reason, self.line, self.column, self.hint = reason, line, column, hint


def fail(reason: str, at: Token | Window | Column | Name, hint: str = "") -> NoReturn:
    """Refuse the query at ``at``'s line and column.

    Examples
    --------
    >>> try:
    ...     fail("bad", Token("NAME", "x", line=2, column=5))
    ... except Problem as p:
    ...     p.reason, p.line, p.column
    ('bad', 2, 5)
    """
    raise Problem(reason, at.line or 1, at.column or 1, hint)


def record(node: Any, nest: int, tree: int, at: Any, chain: int = 0) -> Any:
    """Keep ``node``'s depths for the nodes built on it; refuse it, pointing at ``at``,
    beyond the limits (``chain``: the number of and/or terms that made ``tree``).

    Examples
    --------
    >>> token = Token("NOT", "not", line=1, column=7)
    >>> ctx = contextvars.copy_context()
    >>> ctx.run(lambda: (depths.set({}), record("node", 1, 1, token))[1])
    'node'
    >>> ctx.run(record, "node", MAX_DEPTH + 1, 1, token)
    Traceback (most recent call last):
    algebra.lang.limits.Problem: nested too deeply (more than 200 levels)
    """
    if nest > MAX_DEPTH:
        fail(f"nested too deeply (more than {MAX_DEPTH} levels)", at)
    if tree > MAX_TREE_DEPTH:
        terms = (
            f"a chain of {chain} terms joined by and/or makes"
            if chain
            else "the and/or chains within make"
        )
        fail(
            f"too many conditions: {terms} the condition more than {MAX_TREE_DEPTH} levels deep",
            at,
            " For many values, compare a column with a list: id in (0, 1, ...)",
        )
    depths.get()[id(node)] = (nest, tree)
    return node


def grouped_depth(found: list[int]) -> int:
    """The tree depth of terms of depths ``found`` joined as
    :func:`~algebra.lang.predicates.chained` groups them.

    Examples
    --------
    >>> grouped_depth([0, 0, 0])  # left-deep: ((a and b) and c)
    2
    """
    if len(found) <= LEFT_DEEP:
        # Left-deep: the first term sits len - 1 levels down, term i (i >= 1) len - i levels.
        return max(t + len(found) - max(i, 1) for i, t in enumerate(found))
    half = len(found) // 2
    return 1 + max(grouped_depth(found[:half]), grouped_depth(found[half:]))

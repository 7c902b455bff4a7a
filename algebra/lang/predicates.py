"""The predicates of a ``where`` clause in the syntax tree, and how they print.

Re-exported by :mod:`algebra.lang.syntax`, which holds the rest of the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The per-sample columns a ``where`` predicate can test.
COLUMNS = ("pred", "label", "correct", "score", "id")
#: The columns that are a predicate on their own (``where correct``).
BOOLEAN_COLUMNS = ("correct",)
#: Comparison operators, as normalised by the parser (``==`` is ``=``, ``<>`` is ``!=``).
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def position() -> Any:
    """A line or column field: kept for error messages, ignored by equality and ``repr``.

    Examples
    --------
    >>> Column("pred", line=2, column=5) == Column("pred")
    True
    """
    return field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Column:
    """A per-sample column (see :data:`COLUMNS`); alone, a boolean column is a predicate.

    Examples
    --------
    >>> Column("correct").to_text()
    'correct'
    """

    name: str
    line: int = position()
    column: int = position()

    def to_text(self) -> str:
        """The column's name, as query text.

        Examples
        --------
        >>> Column("label").to_text()
        'label'
        """
        return self.name


Scalar = int | float | str | bool
Value = Scalar | Column | tuple[Scalar, ...]


@dataclass(frozen=True)
class Compare:
    """``column op value``; ``op`` is one of :data:`OPERATORS`, and ``in`` takes a tuple.

    Examples
    --------
    >>> Compare(Column("pred"), "!=", Column("label")).to_text()
    'pred != label'
    >>> Compare(Column("id"), "in", (1, 2, 3)).to_text()
    'id in (1, 2, 3)'
    """

    column: Column
    op: str
    value: Value

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"op: unknown comparison {self.op!r}; expected one of {OPERATORS}")

    def to_text(self) -> str:
        """The comparison as query text.

        Examples
        --------
        >>> Compare(Column("score"), ">", 0.5).to_text()
        'score > 0.5'
        """
        return predicate_text(self)


@dataclass(frozen=True)
class Not:
    """``not operand``.

    Examples
    --------
    >>> Not(Column("correct")).to_text()
    'not correct'
    """

    operand: Predicate

    def to_text(self) -> str:
        """The negation as query text, with parentheses where precedence needs them.

        Examples
        --------
        >>> Not(Or(Column("correct"), Compare(Column("label"), "=", 3))).to_text()
        'not (correct or label = 3)'
        """
        return predicate_text(self)


@dataclass(frozen=True)
class And:
    """``left and right``.

    Examples
    --------
    >>> And(Column("correct"), Compare(Column("label"), "=", 3)).to_text()
    'correct and label = 3'
    """

    left: Predicate
    right: Predicate

    def to_text(self) -> str:
        """The conjunction as query text, with parentheses where precedence needs them.

        Examples
        --------
        >>> a, b, c = Column("correct"), Compare(Column("id"), "<", 9), Compare(Column("id"), ">", 2)
        >>> And(a, And(b, c)).to_text(), And(And(a, b), c).to_text()
        ('correct and (id < 9 and id > 2)', 'correct and id < 9 and id > 2')
        """
        return predicate_text(self)


@dataclass(frozen=True)
class Or:
    """``left or right``.

    Examples
    --------
    >>> Or(Column("correct"), Compare(Column("label"), "=", 3)).to_text()
    'correct or label = 3'
    """

    left: Predicate
    right: Predicate

    def to_text(self) -> str:
        """The disjunction as query text, with parentheses where precedence needs them.

        Examples
        --------
        >>> a, b = Column("correct"), Compare(Column("label"), "=", 3)
        >>> And(Or(a, b), a).to_text()
        '(correct or label = 3) and correct'
        """
        return predicate_text(self)


@dataclass(frozen=True)
class Mistakes:
    """``mistakes`` (the samples whose prediction differs from the label) or ``mistakes of
    K`` (those of them labelled ``K``, a class index or a quoted class name).

    Examples
    --------
    >>> Mistakes(3).to_text(), Mistakes().to_text(), Mistakes("cat").to_text()
    ('mistakes of 3', 'mistakes', "mistakes of 'cat'")
    """

    cls: int | str | None = None
    line: int = position()
    column: int = position()

    def to_text(self) -> str:
        """The term as query text.

        Examples
        --------
        >>> Mistakes(0).to_text()
        'mistakes of 0'
        """
        return predicate_text(self)


Predicate = Compare | Column | Not | And | Or | Mistakes


def quote(text: str) -> str:
    """``text`` as a single-quoted query string, with backslash escapes.

    Examples
    --------
    >>> print(quote("it's"))
    'it\\'s'
    """
    return "'" + "".join(_ESCAPES.get(c, c) for c in text) + "'"


def literal(value: Scalar) -> str:
    """A literal as query text: booleans as ``true``/``false``, strings quoted.

    Examples
    --------
    >>> literal(True), literal("a b"), literal(2.5)
    ('true', "'a b'", '2.5')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    return repr(value)


_PRECEDENCE = {Or: 1, And: 2, Not: 3}
#: Chains of up to this many terms are left-deep (``a or b or c`` is ``(a or b) or c``);
#: longer ones are grouped in halves, so a chain of any length stays a few levels deep.
#: ``and`` and ``or`` are associative: the grouping never changes a condition's meaning.
LEFT_DEEP = 32


def chained(op: type, terms: list[Predicate]) -> Predicate:
    """``terms`` joined by ``op`` (``And`` or ``Or``) as the parser groups a chain.

    Examples
    --------
    >>> c = Column("correct")
    >>> chained(Or, [c, c, c]) == Or(Or(c, c), c)
    True
    >>> depth = lambda n: 1 + max(depth(n.left), depth(n.right)) if isinstance(n, Or) else 0
    >>> depth(chained(Or, [c] * 300))  # not 299
    22
    """
    if len(terms) <= LEFT_DEEP:
        result = terms[0]
        for term in terms[1:]:
            result = op(result, term)
        return result
    half = len(terms) // 2
    return op(chained(op, terms[:half]), chained(op, terms[half:]))


def _flat_terms(node: Predicate) -> list[Predicate]:
    # The terms of a chain of ``type(node)``, whatever its grouping (an explicit stack: a
    # chain may be long).
    terms, stack = [], [node]
    while stack:
        sub = stack.pop()
        if type(sub) is type(node):
            stack += [sub.right, sub.left]  # type: ignore[union-attr]
        else:
            terms.append(sub)
    return terms


def predicate_text(node: Predicate) -> str:
    """A predicate as query text, with the fewest parentheses that keep its meaning.

    Examples
    --------
    >>> predicate_text(And(Column("correct"), Or(Column("correct"), Compare(Column("id"), "<", 3))))
    'correct and (correct or id < 3)'
    """
    # One frame per level: the parser bounds the depth, so recursion is safe here.
    if isinstance(node, Column):
        return node.name
    if isinstance(node, Mistakes):
        return "mistakes" if node.cls is None else f"mistakes of {literal(node.cls)}"
    if isinstance(node, Compare):
        if node.op == "in":
            values = ", ".join(literal(v) for v in node.value)  # type: ignore[union-attr]
            return f"{node.column.name} in ({values})"
        value = node.value.name if isinstance(node.value, Column) else literal(node.value)
        return f"{node.column.name} {node.op} {value}"
    own = _PRECEDENCE[type(node)]

    def child(sub: Predicate, right: bool) -> str:
        level = _PRECEDENCE.get(type(sub), 4)
        # Binary operators associate to the left, so an equal level on the right keeps
        # its parentheses.
        tight = level < own or (right and level == own and not isinstance(node, Not))
        text = predicate_text(sub)
        return f"({text})" if tight else text

    if isinstance(node, Not):
        return f"not {child(node.operand, False)}"
    keyword = "and" if isinstance(node, And) else "or"
    terms = _flat_terms(node)
    if len(terms) > 2 and chained(type(node), terms) == node:  # a chain as the parser builds it
        return f" {keyword} ".join(child(term, False) for term in terms)
    return f"{child(node.left, False)} {keyword} {child(node.right, True)}"

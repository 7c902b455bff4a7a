"""Per-sample columns and predicates over them: ``ia.col.pred != ia.col.label``.

Columns are ``pred`` (the predicted class), ``label``, ``correct`` (``pred == label``),
``score`` (the softmax probability of the predicted class) and ``id`` (the sample id).
Predicates are immutable and structurally hashed like expression nodes; they print as
query-language text and lower to plain tuples that the kernels evaluate on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import did_you_mean

COLUMNS = ("pred", "label", "correct", "score", "id")
OPS = ("=", "!=", "<", "<=", ">", ">=")
Literal = bool | int | float | str
# Python's and/or/not call __bool__, which a lazy condition cannot answer.
NO_PYTHON_LOGIC = "where: combine conditions with & and | (and negate with ~), not 'and'/'or'/'not'"


def _check_literal(value: Any) -> Literal:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # NumPy and torch scalars
    if not isinstance(value, (bool, int, float, str)):
        raise TypeError(
            f"where: compare a column with a number, a string or another column; got {value!r}"
        )
    return value


@dataclass(frozen=True, eq=False)
class Predicate:
    """A condition on per-sample columns; combine with ``&``, ``|`` and ``~``.

    ``kind`` is ``col`` (a boolean column), ``cmp``, ``in``, ``and``, ``or`` or ``not``.
    """

    kind: str
    args: tuple[Any, ...]

    @property
    def token(self) -> str:
        """A structural token, equal for predicates built the same way."""
        parts = [a.token if isinstance(a, Predicate) else repr(a) for a in self.args]
        return f"pred:{self.kind}({','.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Predicate) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __and__(self, other: Predicate) -> Predicate:
        return Predicate("and", (self, as_predicate(other, "&")))

    def __or__(self, other: Predicate) -> Predicate:
        return Predicate("or", (self, as_predicate(other, "|")))

    def __invert__(self) -> Predicate:
        return Predicate("not", (self,))

    def __bool__(self) -> bool:
        raise TypeError(
            NO_PYTHON_LOGIC + ", e.g. (ia.col.pred != ia.col.label) & (ia.col.score > 0.5)"
        )

    def __repr__(self) -> str:
        return f"Predicate({self.to_query()})"

    def columns(self) -> set[str]:
        """The column names this predicate reads.

        Examples
        --------
        >>> sorted((col.pred != col.label).columns())
        ['label', 'pred']
        """
        names: set[str] = set()
        for arg in self.args:
            if isinstance(arg, Predicate):
                names |= arg.columns()
            elif isinstance(arg, Column):
                names.add(arg.name)
        if self.kind == "col":
            names.add(self.args[0])
        return names

    def to_query(self) -> str:
        """The predicate as query-language text.

        Examples
        --------
        >>> ((col.pred != col.label) & (col.score > 0.5)).to_query()
        'pred != label and score > 0.5'
        >>> (~col.correct | col.id.isin([1, 2])).to_query()
        'not correct or id in (1, 2)'
        """
        if self.kind == "col":
            return self.args[0]
        if self.kind == "cmp":
            op, left, right = self.args
            return f"{left.name} {op} {_text(right)}"
        if self.kind == "in":
            left, values = self.args
            return f"{left.name} in ({', '.join(_text(v) for v in values)})"
        if self.kind == "not":
            return f"not {_wrapped(self.args[0], ('col', 'cmp', 'in', 'not'))}"
        a, b = self.args
        if self.kind == "and":
            return f"{_wrapped(a, ('col', 'cmp', 'in', 'not', 'and'))} and {_wrapped(b, ('col', 'cmp', 'in', 'not'))}"
        return f"{_wrapped(a, ('col', 'cmp', 'in', 'not', 'and', 'or'))} or {_wrapped(b, ('col', 'cmp', 'in', 'not', 'and'))}"

    def lowered(self, classes: Sequence[str] | None = None) -> tuple[Any, ...]:
        """Plain tuples for the kernels; class names compared with ``pred``/``label``
        become class indices (``classes`` are the model's class names).

        Examples
        --------
        >>> (col.pred == "cat").lowered(["dog", "cat"])
        ('cmp', '=', ('col', 'pred'), ('lit', 1))
        """
        if self.kind == "col":
            return ("col", self.args[0])
        if self.kind == "cmp":
            op, left, right = self.args
            return ("cmp", op, ("col", left.name), _lowered_value(left.name, right, classes))
        if self.kind == "in":
            left, values = self.args
            lits = tuple(_lowered_value(left.name, v, classes)[1] for v in values)
            return ("in", ("col", left.name), lits)
        return (self.kind, *(a.lowered(classes) for a in self.args))


def _text(value: Any) -> str:
    if isinstance(value, Column):
        return value.name
    return repr(value)


def _wrapped(p: Predicate, bare: tuple[str, ...]) -> str:
    return p.to_query() if p.kind in bare else f"({p.to_query()})"


def _lowered_value(column: str, value: Any, classes: Sequence[str] | None) -> tuple[str, Any]:
    if isinstance(value, Column):
        return ("col", value.name)
    if isinstance(value, str) and column in ("pred", "label"):
        names = list(classes or ())
        if value not in names:
            hint = did_you_mean(value, names) if names else " The model has no class names."
            raise ValueError(f"where: {column} = {value!r} names no class of the model.{hint}")
        return ("lit", names.index(value))
    return ("lit", value)


class Column:
    """A per-sample column; compare it to build a :class:`Predicate`.

    Examples
    --------
    >>> col.label == 3
    Predicate(label = 3)
    """

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"col.{self.name}"

    @property
    def token(self) -> str:
        return f"col:{self.name}"

    def _compare(self, op: str, other: Any) -> Predicate:
        right = other if isinstance(other, Column) else _check_literal(other)
        return Predicate("cmp", (op, self, right))

    def __eq__(self, other: object) -> Predicate:  # type: ignore[override]
        return self._compare("=", other)

    def __ne__(self, other: object) -> Predicate:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: Any) -> Predicate:
        return self._compare("<", other)

    def __le__(self, other: Any) -> Predicate:
        return self._compare("<=", other)

    def __gt__(self, other: Any) -> Predicate:
        return self._compare(">", other)

    def __ge__(self, other: Any) -> Predicate:
        return self._compare(">=", other)

    def __hash__(self) -> int:
        return hash(self.token)

    def __bool__(self) -> bool:
        raise TypeError(NO_PYTHON_LOGIC + ", e.g. ~ia.col.correct & (ia.col.label == 1)")

    def __invert__(self) -> Predicate:
        return ~as_predicate(self, "~")

    def __and__(self, other: Any) -> Predicate:
        return as_predicate(self, "&") & other

    def __or__(self, other: Any) -> Predicate:
        return as_predicate(self, "|") | other

    def isin(self, values: Sequence[Any]) -> Predicate:
        """True where the column equals one of ``values``.

        Examples
        --------
        >>> col.label.isin([1, 2])
        Predicate(label in (1, 2))
        """
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"values: expected a list of values; got {values!r}")
        items = tuple(_check_literal(v) for v in values)
        if not items:
            raise ValueError("values: expected at least one value")
        return Predicate("in", (self, items))


class Columns:
    """The namespace ``ia.col``: ``pred``, ``label``, ``correct``, ``score``, ``id``."""

    def __getattr__(self, name: str) -> Column:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in COLUMNS:
            raise AttributeError(
                f"col: no column {name!r}; the columns are {', '.join(COLUMNS)}."
                + did_you_mean(name, COLUMNS)
            )
        return Column(name)

    def __dir__(self) -> list[str]:
        return list(COLUMNS)

    def __repr__(self) -> str:
        return f"col({', '.join(COLUMNS)})"


col = Columns()


def as_predicate(value: Any, argument: str = "predicate") -> Predicate:
    """A predicate from a :class:`Predicate` or a boolean column (``correct``).

    Examples
    --------
    >>> as_predicate(col.correct).to_query()
    'correct'
    >>> as_predicate(col.score)
    Traceback (most recent call last):
    TypeError: predicate: 'score' is not a boolean column; compare it, e.g. col.score > 0.5
    """
    if isinstance(value, Predicate):
        return value
    if isinstance(value, Column):
        if value.name != "correct":
            raise TypeError(
                f"{argument}: {value.name!r} is not a boolean column; compare it, "
                f"e.g. col.{value.name} {'> 0.5' if value.name == 'score' else '== 1'}"
            )
        return Predicate("col", ("correct",))
    raise TypeError(
        f"{argument}: expected a condition on ia.col columns, e.g. ia.col.pred != ia.col.label; "
        f"got {type(value).__name__}"
    )

"""The syntax tree of a declarative query, as :func:`algebra.lang.parse.parse_query` returns it.

Every node is a frozen dataclass. Positions (``line`` and ``column``, 1-based, ``0`` when a
node was built by hand) point at the node's first character in the query text; they are
left out of equality, hashing and ``repr``, so two queries written differently but meaning
the same are equal. ``to_text()`` prints the canonical text back (lower-case keywords, one
line), and parsing that text gives an equal tree.

The tree of ``select l3 from f(x) join (select l3 from f(x')) where [0, 8, 0, 8] and pred !=
label``::

    Select(layer=Name('l3'), model=Name('f'), inputs=Name('x'),
           joins=(Join('mean', Select(layer=Name('l3'), model=Name('f'), inputs=Name("x'"))),),
           windows=(Window(0, 8, 0, 8),),
           predicate=Compare(Column('pred'), '!=', Column('label')))

- :class:`Select`: ``layer`` (a :class:`Name`, or ``None`` for ``*``, the input), ``model``
  and ``inputs`` (:class:`Name`), then its clauses: ``joins`` (a tuple of :class:`Join`,
  in order), ``method`` (``using``: a :class:`Method` or ``None``), ``target``
  (a :class:`TargetClause` or ``None``), ``windows`` (the ``where`` clause's windows, a
  tuple of :class:`Window` in order: a drill-down) and ``predicate`` (the rest of the
  ``where`` clause, or ``None``). ``neurons`` is true for ``select neurons [of <layer>]``
  (counterfactual neurons; ``layer`` is then the feature layer, or ``None``).
- :class:`Join`: ``how`` is ``"mean"`` (``join``, ``mean join``), ``"min"``, ``"product"``
  or ``"anti"`` (``left join``), and ``query`` the sub-query.
- :class:`Method`: ``name`` and ``params``, a tuple of ``(name, value)`` pairs in the order
  written; values are ``int``, ``float``, ``str`` or ``bool``, a :class:`Call` of players
  (``grid(8, 8)``, ``patches(4)``) or a tuple of integers (``[3, 8, 8]``, a window size).
- :class:`TargetClause`: ``kind`` is ``"pred"``, ``"label"``, ``"all"``, ``"top"`` (with
  ``value`` the ``k``) or ``"index"`` (with ``value`` the class index).
- Predicates over the sample columns (:data:`COLUMNS`): :class:`Compare` (a
  :class:`Column`, an operator among :data:`OPERATORS` and a value: a number, a string, a
  boolean, another :class:`Column`, or for ``in`` a tuple of numbers and strings), a bare
  boolean :class:`Column` (``correct``), :class:`Mistakes` (``mistakes [of <class>]``),
  :class:`Not`, :class:`And` and :class:`Or` (binary, as written: ``a and b and c`` is
  ``And(And(a, b), c)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .predicates import BOOLEAN_COLUMNS as BOOLEAN_COLUMNS
from .predicates import COLUMNS as COLUMNS
from .predicates import OPERATORS as OPERATORS
from .predicates import And as And
from .predicates import Column as Column
from .predicates import Compare as Compare
from .predicates import Mistakes as Mistakes
from .predicates import Not as Not
from .predicates import (
    Or,
    Predicate,
    Scalar,
    literal,
    position,
    predicate_text,
    quote,
)
from .predicates import Value as Value

#: Words with a meaning in the grammar (matched case-insensitively).
KEYWORDS = (
    "select",
    "from",
    "join",
    "left",
    "mean",
    "min",
    "product",
    "using",
    "target",
    "top",
    "where",
    "and",
    "or",
    "not",
    "in",
    "true",
    "false",
    "neurons",
    "of",
    "mistakes",
)
#: How a join combines two interpretations; ``anti`` is ``left join``.
JOIN_KINDS = ("mean", "min", "product", "anti")
#: The forms of a ``target`` clause.
TARGET_KINDS = ("pred", "label", "all", "top", "index")

# An unquoted layer name, as torch's named_modules() writes most of them.
_LAYER = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")


@dataclass(frozen=True)
class Name:
    """A name as written in the query: a model, an input, a layer or a method.

    Equality looks at ``text`` only, not at the position.

    Examples
    --------
    >>> Name("x'") == Name("x'", line=3, column=7)
    True
    """

    text: str
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class Window:
    """A rectangle ``[r0, r1, c0, c1]`` of rows ``r0`` to ``r1`` and columns ``c0`` to ``c1``.

    Examples
    --------
    >>> Window(16, 20, 20, 40)
    Window(r0=16, r1=20, c0=20, c1=40)
    """

    r0: int
    r1: int
    c0: int
    c1: int
    line: int = position()
    column: int = position()

    def to_text(self) -> str:
        """The window as query text.

        Examples
        --------
        >>> Window(16, 20, 20, 40).to_text()
        '[16, 20, 20, 40]'
        """
        return f"[{self.r0}, {self.r1}, {self.c0}, {self.c1}]"


#: The player specs a parameter may call (``groups=grid(8, 8)``).
PLAYER_CALLS = ("grid", "patches")


@dataclass(frozen=True)
class Call:
    """A players spec as a parameter value: ``grid(rows, cols)`` or ``patches(size)``.

    Examples
    --------
    >>> Call("grid", (8, 8)).to_text()
    'grid(8, 8)'
    """

    name: str
    args: tuple[int, ...]

    def to_text(self) -> str:
        """The call as query text.

        Examples
        --------
        >>> Call("patches", (4,)).to_text()
        'patches(4)'
        """
        return f"{self.name}({', '.join(str(a) for a in self.args)})"


#: A method parameter's value.
Param = Scalar | Call | tuple[int, ...]


def param_text(value: Param) -> str:
    """A parameter value as query text: a literal, a call, or a list of integers.

    Examples
    --------
    >>> param_text((3, 8, 8)), param_text(Call("grid", (2, 2))), param_text(True)
    ('[3, 8, 8]', 'grid(2, 2)', 'true')
    """
    if isinstance(value, Call):
        return value.to_text()
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return literal(value)


@dataclass(frozen=True)
class Method:
    """``using name(k=v, ...)``: the interpretation method and its parameters.

    Examples
    --------
    >>> Method(Name("integrated_gradients"), (("steps", 32),)).to_text()
    'integrated_gradients(steps=32)'
    """

    name: Name
    params: tuple[tuple[str, Param], ...] = ()

    def to_text(self) -> str:
        """The method as written after ``using`` (no parentheses without parameters).

        Examples
        --------
        >>> Method(Name("saliency")).to_text()
        'saliency'
        >>> Method(Name("ig"), (("method", "riemann_left"), ("abs", True))).to_text()
        "ig(method='riemann_left', abs=true)"
        """
        if not self.params:
            return self.name.text
        inner = ", ".join(f"{key}={param_text(value)}" for key, value in self.params)
        return f"{self.name.text}({inner})"


@dataclass(frozen=True)
class TargetClause:
    """``target pred | label | all | top k | index``; ``value`` is ``k`` or the class index.

    Examples
    --------
    >>> TargetClause("top", 3)
    TargetClause(kind='top', value=3)
    """

    kind: str
    value: int | None = None
    line: int = position()
    column: int = position()

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"kind: unknown target {self.kind!r}; expected one of {TARGET_KINDS}")

    def to_text(self) -> str:
        """The target as written after ``target``.

        Examples
        --------
        >>> TargetClause("top", 3).to_text(), TargetClause("index", 7).to_text()
        ('top 3', '7')
        >>> TargetClause("pred").to_text()
        'pred'
        """
        if self.kind == "top":
            return f"top {self.value}"
        if self.kind == "index":
            return str(self.value)
        return self.kind


@dataclass(frozen=True)
class Join:
    """``join (query)``: combine with a sub-query; ``how`` is one of :data:`JOIN_KINDS`.

    Examples
    --------
    >>> Join("anti", Select(None, Name("f"), Name("x'"))).to_text()
    "left join (select * from f(x'))"
    """

    how: str
    query: Select
    line: int = position()
    column: int = position()

    def __post_init__(self) -> None:
        if self.how not in JOIN_KINDS:
            raise ValueError(f"how: unknown join {self.how!r}; expected one of {JOIN_KINDS}")

    def to_text(self) -> str:
        """The join as query text (the mean join is written plain ``join``).

        Examples
        --------
        >>> sub = Select(None, Name("f"), Name("y"))
        >>> Join("mean", sub).to_text(), Join("min", sub).to_text()
        ('join (select * from f(y))', 'min join (select * from f(y))')
        """
        keyword = {"mean": "join", "anti": "left join"}.get(self.how, f"{self.how} join")
        return f"{keyword} ({self.query.to_text()})"


@dataclass(frozen=True)
class Select:
    """A query: ``select layer from model(inputs)`` and its clauses.

    Examples
    --------
    >>> query = Select(Name("l3"), Name("f"), Name("x"), windows=(Window(0, 8, 0, 8),))
    >>> query.to_text()
    'select l3 from f(x) where [0, 8, 0, 8]'
    """

    layer: Name | None
    model: Name
    inputs: Name
    joins: tuple[Join, ...] = ()
    method: Method | None = None
    target: TargetClause | None = None
    windows: tuple[Window, ...] = ()
    predicate: Predicate | None = None
    neurons: bool = False
    layer_options: tuple[tuple[str, Any], ...] = ()
    line: int = position()
    column: int = position()

    def walk(self) -> Iterator[Select]:
        """This query, then its sub-queries depth first, in the order they are written.

        Examples
        --------
        >>> from algebra.lang.parse import parse_query
        >>> q = parse_query("select * from f(x1) join (select * from g(x2) join (select * from f(x3)))")
        >>> [s.inputs.text for s in q.walk()]
        ['x1', 'x2', 'x3']
        """
        yield self
        for join in self.joins:
            yield from join.query.walk()

    def model_names(self) -> tuple[str, ...]:
        """The model names used, sub-queries included, in order of first appearance.

        Examples
        --------
        >>> from algebra.lang.parse import parse_query
        >>> parse_query("select * from f(x) left join (select * from g(x))").model_names()
        ('f', 'g')
        """
        return tuple(dict.fromkeys(s.model.text for s in self.walk()))

    def input_names(self) -> tuple[str, ...]:
        """The input names used, sub-queries included, in order of first appearance.

        Examples
        --------
        >>> from algebra.lang.parse import parse_query
        >>> q = parse_query("select * from f(x) join (select * from f(x')) join (select * from g(x))")
        >>> q.input_names()
        ('x', "x'")
        """
        return tuple(dict.fromkeys(s.inputs.text for s in self.walk()))

    def to_text(self) -> str:
        """The canonical query text: lower-case keywords, one line, clauses in a fixed order.

        The order is joins, ``using``, ``target``, ``where`` (windows first). Parsing the text
        gives back an equal tree.

        Examples
        --------
        >>> from algebra.lang.parse import parse_query
        >>> parse_query("SELECT * FROM f(x) WHERE pred <> label AND [0,8,0,8]").to_text()
        'select * from f(x) where [0, 8, 0, 8] and pred != label'
        """
        layer = "*" if self.layer is None else _layer_text(self.layer.text)
        layer += layer_options_text(self.layer_options)
        if self.neurons:  # counterfactual neurons, of a layer or of the decision features
            layer = "neurons" + (
                "" if self.layer is None else f" of {_layer_text(self.layer.text)}"
            )
        parts = [f"select {layer} from {self.model.text}({self.inputs.text})"]
        parts += [join.to_text() for join in self.joins]
        if self.method is not None:
            parts.append(f"using {self.method.to_text()}")
        if self.target is not None:
            parts.append(f"target {self.target.to_text()}")
        terms = [window.to_text() for window in self.windows]
        if self.predicate is not None:
            text = predicate_text(self.predicate)
            # After the windows, an `or` must not capture them.
            terms.append(f"({text})" if terms and isinstance(self.predicate, Or) else text)
        if terms:
            parts.append("where " + " and ".join(terms))
        return " ".join(parts)


def layer_options_text(options: tuple[tuple[str, Any], ...]) -> str:
    """A layer's options as written after its name: ``[call=1, output=0, input]``.

    Examples
    --------
    >>> layer_options_text((("call", "all"), ("output", "h"), ("input", True)))
    "[call=all, output='h', input]"
    """
    if not options:
        return ""
    parts = []
    for name, value in options:
        if value is True:
            parts.append(name)
        elif isinstance(value, str) and value != "all":
            parts.append(f"{name}={quote(value)}")
        else:
            parts.append(f"{name}={value}")
    return "[" + ", ".join(parts) + "]"


def _layer_text(text: str) -> str:
    if _LAYER.fullmatch(text) and text.lower() not in KEYWORDS:
        return text
    return quote(text)

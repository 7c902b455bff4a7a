"""The tree builder of the query parser: Lark's transformer that makes syntax nodes
(:mod:`algebra.lang.syntax`) while parsing, checks values and depths as it goes, and
reports what is wrong at the offending token (:class:`~algebra.lang.limits.Problem`).

Examples
--------
>>> from algebra.lang.parse import parse_query
>>> parse_query("select * from f(x) where id in (1, 2)").predicate.to_text()
'id in (1, 2)'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer

from ..errors import did_you_mean
from .limits import MAX_TREE_DEPTH, depths, fail, grouped_depth, record
from .predicates import chained
from .syntax import (
    BOOLEAN_COLUMNS,
    COLUMNS,
    PLAYER_CALLS,
    And,
    Call,
    Column,
    Compare,
    Join,
    Method,
    Mistakes,
    Name,
    Not,
    Or,
    Param,
    Predicate,
    Scalar,
    Select,
    TargetClause,
    Window,
)

_ESCAPED = re.compile(r"\\(.)")
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _depth(node: Any) -> tuple[int, int]:
    if isinstance(node, _Conjunction):
        node = node.predicate
    return depths.get().get(id(node), (0, 0))


def _chain(terms: list[Any], build: Any, tokens: list[Token]) -> Any:
    """``terms`` joined by ``build`` (And or Or) as :func:`chained` groups them, with their
    depths checked."""
    if len(terms) == 1:
        return terms[0]
    result = chained(build, terms)
    found = [_depth(t) for t in terms]
    nest = 1 + max(n for n, _ in found)
    tree = grouped_depth([t for _, t in found])
    # Point at the operator past the limit (the last one when nesting adds the depth).
    limit = tokens[min(MAX_TREE_DEPTH, len(tokens) - 1)] if tokens else terms[0]
    return record(result, nest, tree, limit, len(terms))


@dataclass(frozen=True)
class _Clause:
    keyword: Token
    value: Any


@dataclass(frozen=True)
class _Neurons:
    """`neurons [of <layer>]` in the select list, until the query is built."""

    layer: Name | None


@dataclass(frozen=True)
class _LayerRef:
    """A layer in the select list with its options (`relu[call=1]`), until the query is built."""

    name: Name
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class _Conjunction:
    """An `and` that holds windows: legal only at the top of a where clause."""

    windows: tuple[Window, ...]
    predicate: Predicate | None


def _name(token: Token) -> Name:
    return Name(str(token), token.line or 0, token.column or 0)


def _string(token: Token) -> str:
    return _ESCAPED.sub(lambda m: _UNESCAPE.get(m[1], m[1]), token[1:-1])


def _number(token: Token) -> int | float:
    try:
        if _INTEGER.fullmatch(token):
            return int(token)
        value = float(token)
    except ValueError:  # Python refuses to convert integers of thousands of digits
        fail(f"number {token[:20]}... has too many digits", token)
    if not math.isfinite(value):
        fail(f"number {token} is out of range", token)
    return value


def _column(token: Token) -> Column:
    name = token.lower()
    if name not in COLUMNS:
        choices = ", ".join(repr(c) for c in COLUMNS)
        fail(
            f"unknown column {str(token)!r}; expected one of {choices}",
            token,
            did_you_mean(name, COLUMNS),
        )
    return Column(name, token.line or 0, token.column or 0)


def _windows_in(node: Any) -> tuple[Window, ...]:
    if isinstance(node, Window):
        return (node,)
    if isinstance(node, _Conjunction):
        return node.windows
    return ()


def _no_window(node: Any) -> Predicate:
    windows = _windows_in(node)
    if windows:
        fail("a window can only be a term of the top-level 'and' of a where clause", windows[0])
    return node


class Build(Transformer):
    """Lark callbacks, one per rule, each building a syntax node from its children."""

    def start(self, children: list[Any]) -> Select:
        return children[0]

    def selection(self, children: list[Any]) -> Name | _Neurons | _LayerRef | None:
        if isinstance(children[0], _LayerRef):
            return children[0]
        if children[0].type == "NEURONS":  # `neurons` or `neurons of <layer>`
            return _Neurons(self.selection(children[2:]) if len(children) == 3 else None)
        (token,) = children
        if token.type == "STAR":
            return None
        text = _string(token) if token.type == "STRING" else str(token)
        return Name(text, token.line or 0, token.column or 0)

    def layer_ref(self, children: list[Any]) -> _LayerRef:
        token, *options = children
        text = _string(token) if token.type == "STRING" else str(token)
        return _LayerRef(Name(text, token.line or 0, token.column or 0), *options)

    def layer_options(self, children: list[Any]) -> tuple[tuple[str, Any], ...]:
        options = [c for c in children if not isinstance(c, Token)]
        seen: set[str] = set()
        for token, _ in options:
            if token in seen:
                fail(f"layer option {str(token)!r} is given twice", token)
            seen.add(token)
        return tuple((str(token), value) for token, value in options)

    def layer_option(self, children: list[Any]) -> tuple[Token, Any]:
        if len(children) == 1:  # a flag: `input`
            return children[0], True
        name, _, value = children
        if value.type == "INT":
            return name, int(value)
        return name, _string(value) if value.type == "STRING" else str(value)

    def query(self, children: list[Any]) -> Select:
        select, layer, _, model, inputs, *clauses = children
        neurons = isinstance(layer, _Neurons)
        layer_options: tuple[tuple[str, Any], ...] = ()
        if isinstance(layer, _LayerRef):
            layer, layer_options = layer.name, layer.options
        layer = layer.layer if isinstance(layer, _Neurons) else layer
        joins: list[Join] = []
        single: dict[str, _Clause] = {}
        for clause in clauses:
            if isinstance(clause, Join):
                joins.append(clause)
                continue
            kind = clause.keyword.lower()
            if kind in single:
                fail(f"duplicate '{kind}' clause; a query has at most one", clause.keyword)
            single[kind] = clause
        windows, predicate = (), None
        if "where" in single:
            windows, predicate = single["where"].value
        inner = [_depth(j.query) for j in joins] + [_depth(predicate)]
        built = Select(
            layer=layer,
            model=_name(model),
            inputs=_name(inputs),
            joins=tuple(joins),
            method=single["using"].value if "using" in single else None,
            target=single["target"].value if "target" in single else None,
            windows=windows,
            predicate=predicate,
            neurons=neurons,
            layer_options=layer_options,
            line=select.line or 0,
            column=select.column or 0,
        )
        nest = 1 + max(n for n, _ in inner)
        return record(built, nest, 1 + max(t for _, t in inner), select)

    def join(self, children: list[Any]) -> Join:
        *keywords, query = children
        how = keywords[0].lower() if len(keywords) == 2 else "mean"
        return Join(
            "anti" if how == "left" else how, query, keywords[0].line or 0, keywords[0].column or 0
        )

    def using(self, children: list[Any]) -> _Clause:
        keyword, name, *params = children
        seen: set[str] = set()
        for token, _ in params:
            if token in seen:
                fail(f"parameter {str(token)!r} is given twice", token)
            seen.add(token)
        # `top` is a keyword, and a parameter's name too (counterfactual_neurons(top=5)).
        pairs = tuple(
            (str(token).lower() if token.type == "TOP" else str(token), value)
            for token, value in params
        )
        return _Clause(keyword, Method(_name(name), pairs))

    def param(self, children: list[Any]) -> tuple[Token, Param]:
        name, _, value = children
        return name, value

    def call(self, children: list[Token]) -> Call:
        name, *args = children
        if not args and name.lower() not in PLAYER_CALLS:  # a bare name is no value
            fail(
                "expected a number, a quoted string, 'true' or 'false'",
                name,
                "Players are written grid(rows, cols) or patches(size); sizes as [3, 8, 8].",
            )
        if not args:
            example = "grid(4, 4)" if name.lower() == "grid" else "patches(4)"
            fail(f"{name.lower()} needs its arguments, e.g. {example}", name)
        if name.lower() not in PLAYER_CALLS:
            choices = ", ".join(f"{c}(...)" for c in PLAYER_CALLS)
            fail(
                f"unknown players {str(name)!r}; expected {choices}",
                name,
                did_you_mean(name.lower(), PLAYER_CALLS),
            )
        return Call(name.lower(), tuple(int(_number(a)) for a in args))

    def int_list(self, children: list[Token]) -> tuple[int, ...]:
        return tuple(int(_number(t)) for t in children[1:])

    def target(self, children: list[Token]) -> _Clause:
        keyword, *rest = children
        token = rest[-1]
        if token.type == "NAME":
            kind = token.lower()
            if kind not in ("pred", "label", "all"):
                words = ("pred", "label", "all", "top")
                fail(
                    f"unknown target {str(token)!r}; expected pred, label, all, top <k> or a "
                    "class index",
                    token,
                    did_you_mean(kind, words),
                )
            clause = TargetClause(kind, None, token.line or 0, token.column or 0)
        else:
            value = int(_number(token))
            if rest[0].type == "TOP" and value < 1:
                fail(f"top needs k >= 1; got {value}", token)
            kind = "top" if rest[0].type == "TOP" else "index"
            clause = TargetClause(kind, value, rest[0].line or 0, rest[0].column or 0)
        return _Clause(keyword, clause)

    def where(self, children: list[Any]) -> _Clause:
        keyword, condition = children
        if isinstance(condition, _Conjunction):
            return _Clause(keyword, (condition.windows, condition.predicate))
        if isinstance(condition, Window):
            return _Clause(keyword, ((condition,), None))
        return _Clause(keyword, ((), condition))

    def or_expr(self, children: list[Any]) -> Predicate:
        operands = [_no_window(c) for c in children if not isinstance(c, Token)]
        return _chain(operands, Or, [c for c in children if isinstance(c, Token)])

    def and_expr(self, children: list[Any]) -> Predicate | _Conjunction:
        windows: list[Window] = []
        terms: list[Predicate] = []
        for child in children:
            if isinstance(child, Token):
                continue
            windows += _windows_in(child)
            term = child.predicate if isinstance(child, _Conjunction) else child
            if term is None or isinstance(term, Window):
                continue
            terms.append(term)
        tokens = [c for c in children if isinstance(c, Token)]
        result = _chain(terms, And, tokens) if terms else None
        if windows:
            return _Conjunction(tuple(windows), result)
        assert result is not None  # without windows, every term is a predicate
        return result

    def negation(self, children: list[Any]) -> Predicate:
        *nots, operand = children
        result = _no_window(operand)
        nest, tree = _depth(result)
        for _ in nots:
            result = Not(result)
        return record(result, nest + len(nots), tree + len(nots), nots[0])

    def bare_column(self, children: list[Token]) -> Column:
        column = _column(children[0])
        if column.name not in BOOLEAN_COLUMNS:
            fail(
                f"column '{column.name}' is not a condition on its own; compare it, "
                f"as in {column.name} = ...",
                children[0],
            )
        return column

    def mistakes(self, children: list[Token]) -> Mistakes:
        keyword = children[0]
        cls: int | str | None = None
        if len(children) == 3:
            token = children[2]
            cls = _string(token) if token.type == "STRING" else int(_number(token))
        return Mistakes(cls, keyword.line or 0, keyword.column or 0)

    def window(self, children: list[Token]) -> Window:
        bracket, *tokens = children
        r0, r1, c0, c1 = (_number(t) for t in tokens)
        window = Window(r0, r1, c0, c1, bracket.line or 0, bracket.column or 0)  # type: ignore[arg-type]
        if not (r0 < r1 and c0 < c1):
            fail(
                f"window {window.to_text()} is empty; expected [r0, r1, c0, c1] with "
                "r0 < r1 and c0 < c1",
                bracket,
            )
        return window

    def comparison(self, children: list[Any]) -> Compare:
        name, op, *values = children
        column = _column(name)
        if op.type == "IN":
            return Compare(column, "in", tuple(values))
        (value,) = values
        if isinstance(value, Token):  # a name on the right is another column
            value = _column(value)
        symbol = {"==": "=", "<>": "!="}.get(str(op), str(op))
        return Compare(column, symbol, value)

    def literal(self, children: list[Token]) -> Scalar:
        (token,) = children
        if token.type == "STRING":
            return _string(token)
        if token.type in ("TRUE", "FALSE"):
            return token.type == "TRUE"
        return _number(token)

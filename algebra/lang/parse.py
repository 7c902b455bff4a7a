"""Parse the declarative query language into a syntax tree (:mod:`algebra.lang.syntax`).

The grammar is in :data:`GRAMMAR` (Lark's EBNF); ``docs/query-language.md`` describes it
for users. The parser is LALR(1) with Lark's contextual lexer. Keywords
(:data:`algebra.lang.syntax.KEYWORDS`, case-insensitive) are reserved: they are never a name,
and a layer named like one is quoted. Tree nodes are built while parsing, in one pass
without recursion; everything that goes wrong, in the grammar or in a check on the values,
becomes a :class:`~algebra.lang.errors.QuerySyntaxError` at the offending line and column.

Examples
--------
>>> parse_query("select l3 from f(x) where [16, 20, 20, 40]").windows
(Window(r0=16, r1=20, c0=20, c1=40),)
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..errors import did_you_mean
from .errors import QuerySyntaxError
from .syntax import (
    BOOLEAN_COLUMNS,
    COLUMNS,
    KEYWORDS,
    And,
    Column,
    Compare,
    Join,
    Method,
    Mistakes,
    Name,
    Not,
    Or,
    Predicate,
    Scalar,
    Select,
    TargetClause,
    Window,
    quote,
)

#: Deepest nesting of sub-queries and predicates (``not``, ``and``, ``or`` levels) accepted.
MAX_DEPTH = 200

_KEYWORD_TERMINALS = "\n".join(
    # Priority 2 beats NAME where both may come; the lookahead keeps `selection` a name.
    f"{word.upper()}.2: /{word}(?![A-Za-z0-9_'])/i"
    for word in KEYWORDS
)

#: The grammar, in Lark's EBNF (keyword terminals are generated from ``syntax.KEYWORDS``).
GRAMMAR = (
    r"""
start: query SEMICOLON?

query: SELECT selection FROM NAME "(" NAME ")" clause*
selection: STAR | LAYER | STRING | NEURONS (OF (LAYER | STRING))?
?clause: join | using | target | where

join: (MEAN | MIN | PRODUCT | LEFT)? JOIN "(" query ")"
using: USING NAME ("(" (param ("," param)*)? ")")?
param: (NAME | TOP) EQUAL literal
target: TARGET (NAME | TOP INT | INT)
where: WHERE or_expr

?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND not_expr)*
?not_expr: NOT+ atom -> negation
         | atom
?atom: window
     | comparison
     | NAME -> bare_column
     | MISTAKES (OF (INT | STRING))? -> mistakes
     | "(" or_expr ")"
window: LSQB INT "," INT "," INT "," INT "]"
comparison: NAME (COMPARE | EQUAL) value
          | NAME IN "(" literal ("," literal)* ")"
?value: literal | NAME
literal: NUMBER | STRING | TRUE | FALSE

NAME: /(?!RESERVED(?![A-Za-z0-9_']))[A-Za-z_][A-Za-z0-9_]*'*/
LAYER: /(?!RESERVED(?![A-Za-z0-9_.]))[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*/
STRING: /'([^'\\\n]|\\.)*'/ | /"([^"\\\n]|\\.)*"/
INT: /[0-9]+/
NUMBER: /[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?/
COMPARE: /==|!=|<>|<=|>=|<|>/
STAR: "*"
EQUAL: "="
LSQB: "["
SEMICOLON: ";"
COMMENT: /--[^\n]*/
%ignore COMMENT
%ignore /\s+/
"""
    + _KEYWORD_TERMINALS
).replace("RESERVED", "(?i:" + "|".join(KEYWORDS) + ")")

# How each terminal reads in "expected ..." messages, in the order they are listed.
_DESCRIPTIONS = {
    "STAR": "'*'",
    "NEURONS": "'neurons'",
    "LAYER": "a layer name",
    "SELECT": "'select'",
    "FROM": "'from'",
    "NUMBER": "a number",
    "INT": "an integer",
    "STRING": "a quoted string",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "NAME": "a name",
    "COMPARE": "a comparison ('=', '!=', '<', ...)",
    "EQUAL": "'='",
    "IN": "'in'",
    "LPAR": "'('",
    "LSQB": "'['",
    "COMMA": "','",
    "RSQB": "']'",
    "AND": "'and'",
    "OR": "'or'",
    "RPAR": "')'",
}
# Sets of terminals read better as one phrase: (present when, phrase, terminals it covers).
_GROUPS = (
    ({"TOP"}, "pred, label, all, top <k> or a class index", {"TOP", "NAME", "INT"}),
    (
        {"NOT", "LSQB"},
        "a condition (a column, a window, mistakes, 'not' or '(')",
        {"NOT", "NAME", "LPAR", "LSQB", "MISTAKES"},
    ),
    ({"COMPARE"}, "a comparison ('=', '!=', '<', ...)", {"COMPARE", "EQUAL"}),
)
_ORDER = {name: rank for rank, name in enumerate(_DESCRIPTIONS)}
_CLAUSES = {"JOIN", "LEFT", "MEAN", "MIN", "PRODUCT", "USING", "TARGET", "WHERE"}
_END = {"$END", "SEMICOLON"}
_SHOWN = 6
_EMPTY = re.compile(r"(\s|--[^\n]*)*")
_ESCAPED = re.compile(r"\\(.)")
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_query(text: str) -> Select:
    """Parse a declarative query into its syntax tree.

    Parameters
    ----------
    text : str
        The query, for example ``"select * from f(x) where [16, 20, 20, 40]"``. Keywords
        are case-insensitive, ``--`` starts a comment and a final ``;`` is optional.

    Returns
    -------
    Select
        The tree (see :mod:`algebra.lang.syntax`); ``to_text()`` prints it back.

    Raises
    ------
    QuerySyntaxError
        For any text that is not a query, with the line, column and a caret.
    TypeError
        If ``text`` is not a string.

    Examples
    --------
    >>> q = parse_query("select * from f(x) left join (select * from f(x'))")
    >>> q.joins[0].how, q.joins[0].query.inputs.text
    ('anti', "x'")
    >>> q.to_text()
    "select * from f(x) left join (select * from f(x'))"
    >>> parse_query("select * form f(x)")
    Traceback (most recent call last):
    algebra.lang.errors.QuerySyntaxError: query: expected 'from' at line 1, column 10
      select * form f(x)
               ^
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected the query as a str; got {type(text).__name__}")
    if _EMPTY.fullmatch(text):
        raise QuerySyntaxError.at(text, 1, 1, "empty query; expected 'select'")
    try:
        query = _parser().parse(text)
        _check_depth(query)
    except _Problem as problem:
        raise QuerySyntaxError.at(
            text, problem.line, problem.column, problem.reason, problem.hint
        ) from None
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None
    except RecursionError:
        raise QuerySyntaxError.at(text, 1, 1, "nested too deeply") from None
    return query


@functools.cache
def _parser() -> Lark:
    # Built on first use: the LALR tables take a moment and most imports never parse.
    return Lark(GRAMMAR, parser="lalr", transformer=_Build(), maybe_placeholders=False)


class _Problem(Exception):
    """A check failed while building the tree; `parse_query` adds the text."""

    def __init__(self, reason: str, line: int, column: int, hint: str = "") -> None:
        super().__init__(reason)
        self.reason, self.line, self.column, self.hint = reason, line, column, hint


def _fail(reason: str, at: Token | Window | Column | Name, hint: str = "") -> NoReturn:
    raise _Problem(reason, at.line or 1, at.column or 1, hint)


@dataclass(frozen=True)
class _Clause:
    keyword: Token
    value: Any


@dataclass(frozen=True)
class _Neurons:
    """`neurons [of <layer>]` in the select list, until the query is built."""

    layer: Name | None


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
        _fail(f"number {token[:20]}... has too many digits", token)
    if not math.isfinite(value):
        _fail(f"number {token} is out of range", token)
    return value


def _column(token: Token) -> Column:
    name = token.lower()
    if name not in COLUMNS:
        choices = ", ".join(repr(c) for c in COLUMNS)
        _fail(
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
        _fail("a window can only be a term of the top-level 'and' of a where clause", windows[0])
    return node


class _Build(Transformer):
    """Lark callbacks, one per rule, each building a syntax node from its children."""

    def start(self, children: list[Any]) -> Select:
        return children[0]

    def selection(self, children: list[Token]) -> Name | _Neurons | None:
        if children[0].type == "NEURONS":  # `neurons` or `neurons of <layer>`
            return _Neurons(self.selection(children[2:]) if len(children) == 3 else None)
        (token,) = children
        if token.type == "STAR":
            return None
        text = _string(token) if token.type == "STRING" else str(token)
        return Name(text, token.line or 0, token.column or 0)

    def query(self, children: list[Any]) -> Select:
        select, layer, _, model, inputs, *clauses = children
        neurons = isinstance(layer, _Neurons)
        layer = layer.layer if isinstance(layer, _Neurons) else layer
        joins: list[Join] = []
        single: dict[str, _Clause] = {}
        for clause in clauses:
            if isinstance(clause, Join):
                joins.append(clause)
                continue
            kind = clause.keyword.lower()
            if kind in single:
                _fail(f"duplicate '{kind}' clause; a query has at most one", clause.keyword)
            single[kind] = clause
        windows, predicate = (), None
        if "where" in single:
            windows, predicate = single["where"].value
        return Select(
            layer=layer,
            model=_name(model),
            inputs=_name(inputs),
            joins=tuple(joins),
            method=single["using"].value if "using" in single else None,
            target=single["target"].value if "target" in single else None,
            windows=windows,
            predicate=predicate,
            neurons=neurons,
            line=select.line or 0,
            column=select.column or 0,
        )

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
                _fail(f"parameter {str(token)!r} is given twice", token)
            seen.add(token)
        # `top` is a keyword, and a parameter's name too (counterfactual_neurons(top=5)).
        pairs = tuple(
            (str(token).lower() if token.type == "TOP" else str(token), value)
            for token, value in params
        )
        return _Clause(keyword, Method(_name(name), pairs))

    def param(self, children: list[Any]) -> tuple[Token, Scalar]:
        name, _, value = children
        return name, value

    def target(self, children: list[Token]) -> _Clause:
        keyword, *rest = children
        token = rest[-1]
        if token.type == "NAME":
            kind = token.lower()
            if kind not in ("pred", "label", "all"):
                words = ("pred", "label", "all", "top")
                _fail(
                    f"unknown target {str(token)!r}; expected pred, label, all, top <k> or a "
                    "class index",
                    token,
                    did_you_mean(kind, words),
                )
            clause = TargetClause(kind, None, token.line or 0, token.column or 0)
        else:
            value = int(_number(token))
            if rest[0].type == "TOP" and value < 1:
                _fail(f"top needs k >= 1; got {value}", token)
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
        result = operands[0]
        for operand in operands[1:]:
            result = Or(result, operand)
        return result

    def and_expr(self, children: list[Any]) -> Predicate | _Conjunction:
        windows: list[Window] = []
        result: Predicate | None = None
        for child in children:
            if isinstance(child, Token):
                continue
            windows += _windows_in(child)
            term = child.predicate if isinstance(child, _Conjunction) else child
            if term is None or isinstance(term, Window):
                continue
            result = term if result is None else And(result, term)
        if windows:
            return _Conjunction(tuple(windows), result)
        assert result is not None  # without windows, every term is a predicate
        return result

    def negation(self, children: list[Any]) -> Predicate:
        *nots, operand = children
        result = _no_window(operand)
        for _ in nots:
            result = Not(result)
        return result

    def bare_column(self, children: list[Token]) -> Column:
        column = _column(children[0])
        if column.name not in BOOLEAN_COLUMNS:
            _fail(
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
            _fail(
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


def _check_depth(query: Select) -> None:
    # Printing, comparing and walking trees recurse, so bound the depth here, iteratively.
    stack: list[tuple[Any, int]] = [(query, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            while not isinstance(node, (Select, Column, Compare)):
                node = node.operand if isinstance(node, Not) else node.left
            at = node.column if isinstance(node, Compare) else node
            _fail(f"nested too deeply (more than {MAX_DEPTH} levels)", at)
        if isinstance(node, Select):
            stack += [(j.query, depth + 1) for j in node.joins]
            if node.predicate is not None:
                stack.append((node.predicate, depth + 1))
        elif isinstance(node, Not):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, (And, Or)):
            stack += [(node.left, depth + 1), (node.right, depth + 1)]


def _syntax_error(text: str, error: UnexpectedInput) -> QuerySyntaxError:
    line, column = error.line, error.column
    hint = ""
    if isinstance(error, UnexpectedToken):
        token = error.token
        expected = set(error.accepts or error.expected)
        if token.type == "$END":
            line, column = token.end_line, token.end_column
            reason = "unexpected end of query; " + _expected(expected)
        else:
            reason = _expected(expected)
            keywords = [w for w in KEYWORDS if w.upper() in expected]
            if len(token) >= 2 and len(keywords) > 1 and token.type in ("NAME", "LAYER"):
                # A misspelt keyword reads as a name: suggest the keywords allowed here.
                hint = did_you_mean(token.lower(), keywords)
            elif token.lower() in KEYWORDS and expected & {"NAME", "LAYER"}:
                hint = f"{token.lower()!r} is a keyword: it cannot be a name"
                if "STRING" in expected:
                    hint += f" (quote a layer named like it: {quote(str(token))})"
    elif isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else ""
        reason = f"unexpected character {char!r}"
        if error.allowed:
            reason += "; " + _expected(set(error.allowed))
    else:
        reason = "invalid query"
    if not isinstance(line, int) or line < 1:
        line, column = 1, 1
    return QuerySyntaxError.at(text, line, column or 1, reason, hint)


def _expected(expected: set[str]) -> str:
    names = set(expected)
    items: list[str] = []
    for when, phrase, covered in _GROUPS:
        if when <= names:
            items.append(phrase)
            names -= covered
    items += [
        _DESCRIPTIONS.get(n, repr(n.lower())) for n in sorted(names - _CLAUSES - _END, key=_rank)
    ]
    if len(names & _CLAUSES) > 1:
        items.append("a clause (join, using, target, where)")
    else:
        items += [repr(n.lower()) for n in names & _CLAUSES]
    if names & _END:
        items.append("the end of the query")
    if len(items) > _SHOWN:
        items = [*items[: _SHOWN - 1], "..."]
    if len(items) == 1:
        return f"expected {items[0]}"
    return f"expected {', '.join(items[:-1])} or {items[-1]}"


def _rank(name: str) -> tuple[int, str]:
    return (_ORDER.get(name, len(_ORDER)), name)

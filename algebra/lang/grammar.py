"""The query language's grammar (Lark's EBNF) and how its parse errors read to a person.

:mod:`algebra.lang.parse` builds the parser from :data:`GRAMMAR` and turns what it reads
into the syntax tree; this module also words Lark's errors: what was expected, in words.
"""

from __future__ import annotations

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..errors import did_you_mean
from .errors import QuerySyntaxError
from .syntax import KEYWORDS, quote

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
selection: STAR | layer_ref | NEURONS (OF (LAYER | STRING))?
layer_ref: (LAYER | STRING) layer_options?
layer_options: LSQB layer_option ("," layer_option)* "]"
layer_option: NAME (EQUAL (INT | NAME | STRING))?
?clause: join | using | target | where

join: (MEAN | MIN | PRODUCT | LEFT)? JOIN "(" query ")"
using: USING NAME ("(" (param ("," param)*)? ")")?
param: (NAME | TOP) EQUAL (literal | call | int_list)
call: NAME ("(" INT ("," INT)* ")")?
int_list: LSQB INT ("," INT)* "]"
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


def syntax_error(text: str, error: UnexpectedInput) -> QuerySyntaxError:
    """Lark's parse error as a :class:`QuerySyntaxError`: where, what was expected (in words,
    not terminal names), and a close keyword when a misspelt one reads as a name.

    Examples
    --------
    >>> from algebra.lang.parse import parse_query
    >>> parse_query("select * form f(x)")
    Traceback (most recent call last):
    algebra.lang.errors.QuerySyntaxError: query: expected 'from' at line 1, column 10
      select * form f(x)
               ^
    """
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

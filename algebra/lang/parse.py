"""Parse the declarative query language into a syntax tree (:mod:`algebra.lang.syntax`).

The grammar is in :data:`algebra.lang.grammar.GRAMMAR` (Lark's EBNF); ``docs/query-language.md`` describes it
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
import re

from lark import Lark
from lark.exceptions import UnexpectedInput

from .build import Build
from .errors import QuerySyntaxError
from .grammar import GRAMMAR, syntax_error
from .limits import Problem, depths
from .syntax import Select

#: Longest query accepted, in characters: a query is refused at once beyond it, before
#: the parser runs (which takes a few seconds on a megabyte of text).
MAX_LENGTH = 100_000

_EMPTY = re.compile(r"(\s|--[^\n]*)*")


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
    if len(text) > MAX_LENGTH:
        line = text.count("\n", 0, MAX_LENGTH) + 1
        column = MAX_LENGTH - (text.rfind("\n", 0, MAX_LENGTH) + 1) + 1
        raise QuerySyntaxError.at(
            text,
            line,
            column,
            f"the query is {len(text)} characters long; at most {MAX_LENGTH} are accepted",
            " For many values, compare a column with a list: id in (0, 1, ...)",
        )
    if _EMPTY.fullmatch(text):
        raise QuerySyntaxError.at(text, 1, 1, "empty query; expected 'select'")
    token = depths.set({})  # the depths of this parse's nodes, checked as they are built
    try:
        query = _parser().parse(text)
    except Problem as problem:
        raise QuerySyntaxError.at(
            text, problem.line, problem.column, problem.reason, problem.hint
        ) from None
    except UnexpectedInput as error:
        raise syntax_error(text, error) from None
    except RecursionError:
        raise QuerySyntaxError.at(text, 1, 1, "nested too deeply") from None
    finally:
        depths.reset(token)
    return query


@functools.cache
def _parser() -> Lark:
    # Built on first use: the LALR tables take a moment and most imports never parse.
    return Lark(GRAMMAR, parser="lalr", transformer=Build(), maybe_placeholders=False)

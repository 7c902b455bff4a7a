"""Errors of the declarative query language, pointing at a line and column of the query.

:class:`QueryError` is the base of every error about a query's text: its message names the
problem, the line and the column (both 1-based), and shows the offending line with a caret
under the column. :class:`QuerySyntaxError` is what :func:`algebra.lang.parse.parse_query` raises;
the step that binds a parsed query to models and inputs raises :class:`QueryError` (for an
unknown binding, layer or method) through :meth:`QueryError.at`.

Examples
--------
>>> print(QuerySyntaxError.at("select * form f(x)", 1, 10, "expected 'from'"))
query: expected 'from' at line 1, column 10
  select * form f(x)
           ^
"""

from __future__ import annotations

from typing import Any

# Lines longer than this are cut around the column, so the caret stays on screen.
_WIDTH = 100
_CONTEXT = 40


class QueryError(ValueError):
    """An error in a query's text, at a 1-based line and column.

    Parameters
    ----------
    reason : str
        What is wrong, without the position (for example ``"expected 'from'"``).
    text : str
        The whole query text.
    line, column : int
        1-based position of the offending character; the column may be one past the end
        of the line (an unexpected end of the query).
    hint : str, optional
        A last line after the caret, such as ``"Did you mean 'pred'?"``.

    Attributes
    ----------
    reason, text, line, column, hint
        As given; ``str(error)`` is the full message with the caret.

    Examples
    --------
    >>> error = QueryError("unknown model 'g'", "select * from g(x)", 1, 15)
    >>> error.line, error.column, error.reason
    (1, 15, "unknown model 'g'")
    >>> isinstance(error, ValueError)
    True
    """

    def __init__(self, reason: str, text: str, line: int, column: int, hint: str = "") -> None:
        self.reason = reason
        self.text = text
        self.line = line
        self.column = column
        self.hint = hint.strip()
        super().__init__(format_message(reason, text, line, column, self.hint))

    def __reduce__(self) -> tuple[Any, ...]:
        # The message is derived, so pickling must replay the constructor's own arguments.
        return (type(self), (self.reason, self.text, self.line, self.column, self.hint))

    @classmethod
    def at(cls, text: str, line: int, column: int, reason: str, hint: str = "") -> QueryError:
        """Build the error for ``reason`` at ``line`` and ``column`` of ``text``.

        Parameters
        ----------
        text : str
            The query text.
        line, column : int
            1-based position, for example a syntax node's ``line`` and ``column``.
        reason : str
            The problem, without the position.
        hint : str, optional
            A line shown after the caret, for example from
            :func:`algebra.errors.did_you_mean`.

        Returns
        -------
        QueryError
            An instance of the class it is called on (raise it).

        Examples
        --------
        >>> text = "select * from f(x)\\njoin (select * from g(x'))"
        >>> error = QueryError.at(text, 2, 21, "unknown model 'g'")
        >>> print(error)
        query: unknown model 'g' at line 2, column 21
          join (select * from g(x'))
                              ^
        >>> print(QueryError.at("select * from f(x) using saliancy", 1, 26,
        ...                     "unknown method 'saliancy'", " Did you mean 'saliency'?"))
        query: unknown method 'saliancy' at line 1, column 26
          select * from f(x) using saliancy
                                   ^
        Did you mean 'saliency'?
        >>> type(QuerySyntaxError.at(text, 1, 1, "oops")).__name__
        'QuerySyntaxError'
        """
        return cls(reason, text, line, column, hint)


class QuerySyntaxError(QueryError):
    """The query's text does not follow the grammar (see ``docs/query-language.md``).

    Examples
    --------
    >>> from algebra.lang.parse import parse_query
    >>> try:
    ...     parse_query("select * from f(x) where [0, 8, 0, 8] or correct")
    ... except QuerySyntaxError as error:
    ...     print(error.line, error.column, error.reason)
    1 26 a window can only be a term of the top-level 'and' of a where clause
    """


def format_message(reason: str, text: str, line: int, column: int, hint: str = "") -> str:
    """The full message: the reason, the position, the line of text, a caret, then the hint.

    Tabs are kept in the caret's indentation so that the caret lines up in a terminal;
    control characters are shown as spaces, and long lines are cut around the column.

    Parameters
    ----------
    reason : str
        What is wrong.
    text : str
        The query text.
    line, column : int
        1-based position (clamped into the text).
    hint : str, optional
        A last line, left out when empty.

    Returns
    -------
    str

    Examples
    --------
    >>> print(format_message("unexpected end of query", "select *", 1, 9))
    query: unexpected end of query at line 1, column 9
      select *
              ^
    """
    lines = text.split("\n")
    number = min(max(line, 1), len(lines))
    source = lines[number - 1]
    offset = min(max(column, 1), len(source) + 1) - 1
    shown = "".join(c if c.isprintable() or c == "\t" else " " for c in source)
    prefix = ""
    if len(shown) > _WIDTH:
        start = max(offset - _CONTEXT, 0)
        end = min(offset + _CONTEXT, len(shown))
        prefix = "..." if start else ""
        shown = prefix + shown[start:end] + ("..." if end < len(shown) else "")
        source = " " * len(prefix) + source[start:end]
        offset = offset - start + len(prefix)
    pad = "".join("\t" if c == "\t" else " " for c in source[:offset])
    message = f"query: {reason} at line {line}, column {column}\n  {shown}\n  {pad}^"
    return f"{message}\n{hint.strip()}" if hint.strip() else message

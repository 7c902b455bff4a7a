"""How the page hears of a failure: a JSON message, never a traceback.

A query's syntax or binding error keeps its line and column, so the page can put a caret
under the text; any other error is reported by its message (the server's log keeps the
traceback of an unexpected one).
"""

from __future__ import annotations

import logging
from typing import Any

from ..lang.errors import QueryError, QuerySyntaxError

log = logging.getLogger("algebra.web")


class WebError(Exception):
    """A request the server refuses: an HTTP status and a JSON payload with a message.

    Examples
    --------
    >>> e = WebError(413, "request: the body is larger than 65536 bytes")
    >>> e.status, e.payload["message"]
    (413, 'request: the body is larger than 65536 bytes')
    """

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"message": message, "kind": extra.pop("kind", "request"), **extra}


class Cancelled(Exception):
    """A job stopped because its tab or the user cancelled it."""


def error_payload(error: BaseException) -> dict[str, Any]:
    """The JSON the page gets for ``error``: ``message`` and ``kind``; for an error in a
    query's text also ``reason``, ``line``, ``column`` and ``hint``.

    Examples
    --------
    >>> from algebra.lang.parse import parse_query
    >>> try:
    ...     parse_query("select * form f(x)")
    ... except QueryError as e:
    ...     p = error_payload(e)
    >>> p["kind"], p["line"], p["column"], p["reason"]
    ('syntax', 1, 10, "expected 'from'")
    >>> error_payload(ValueError("window: [0, 9, 0, 2] is empty"))
    {'message': 'window: [0, 9, 0, 2] is empty', 'kind': 'input'}
    >>> error_payload(KeyError("model: no model 'x'"))["message"]
    "model: no model 'x'"
    """
    if isinstance(error, WebError):
        return dict(error.payload)
    if isinstance(error, QueryError):
        return {
            "message": str(error),
            "kind": "syntax" if isinstance(error, QuerySyntaxError) else "query",
            "reason": error.reason,
            "line": error.line,
            "column": error.column,
            "hint": error.hint,
        }
    if isinstance(error, KeyError) and error.args:
        return {"message": str(error.args[0]), "kind": "input"}
    if isinstance(error, (ValueError, TypeError, IndexError)):
        return {"message": str(error), "kind": "input"}
    if isinstance(error, MemoryError):
        return {
            "message": "out of memory: ask for fewer samples, targets or copies",
            "kind": "memory",
        }
    if isinstance(error, RuntimeError):  # raised by torch: the model on inputs it cannot take
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return {"message": f"the model failed on the inputs: {first}", "kind": "model"}
    log.exception("unexpected error", exc_info=error)
    return {"message": f"internal error ({type(error).__name__}): {error}", "kind": "internal"}

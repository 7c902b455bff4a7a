"""Sessions: memoized results, so re-asking or refining a query pays only for what is new."""

from __future__ import annotations

import contextvars
from collections import OrderedDict
from typing import Any

import xarray as xr

from .nodes import Node
from .operators import source_of
from .options import options

_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar("session", default=None)


class Session:
    """A memo of computed results keyed by expression structure and model state.

    Results are kept least-recently-used first out, up to ``max_bytes``. A result is
    reused only while the model's parameters and buffers are unchanged (their identity,
    version counters and sums are part of the key) and the inputs are unchanged (their
    version counters are part of the expression). Memoized results are shared with the
    memo, as with ``functools.cache``: ``.copy()`` one before modifying it in place.

    Parameters
    ----------
    max_bytes : int, optional
        Memory bound of the memo (default ``ia.options.session_bytes``); 0 keeps nothing.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> s = ia.Session()
    >>> a = s.compute(q.saliency(0)); b = s.compute(q.saliency(0))
    >>> s.hits, s.misses, len(s)
    (1, 1, 1)
    """

    def __init__(self, max_bytes: int | None = None):
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0
        ):
            raise ValueError(f"max_bytes: expected a number of bytes >= 0; got {max_bytes!r}")
        self._max_bytes = max_bytes
        self._memo: OrderedDict[str, tuple[xr.DataArray, Node]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._tokens: list[contextvars.Token] = []

    @property
    def max_bytes(self) -> int:
        """The memo's bound: as given, else the current ``ia.options.session_bytes``."""
        return options.session_bytes if self._max_bytes is None else self._max_bytes

    def __repr__(self) -> str:
        return (
            f"Session({len(self)} results, {self.nbytes} of {self.max_bytes} bytes, "
            f"{self.hits} hits, {self.misses} misses)"
        )

    def __len__(self) -> int:
        return len(self._memo)

    def __enter__(self) -> Session:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    def compute(self, *exprs: Any, optimize: bool = True) -> Any:
        """:func:`algebra.compute` with this session's memo.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> ia.Session().compute(q.saliency(0), q.saliency(1))[1].dims
        ('sample', 'feature')
        """
        from .compute import compute

        return compute(*exprs, optimize=optimize, session=self)

    def clear(self) -> None:
        """Forget every memoized result.

        Examples
        --------
        >>> s = Session(); s.clear(); len(s)
        0
        """
        self._memo.clear()
        self.nbytes = 0

    def get(self, key: str) -> xr.DataArray | None:
        """The memoized result under ``key`` (marked recently used), or ``None``.

        Examples
        --------
        >>> Session().get("nothing") is None
        True
        """
        if key not in self._memo:
            return None
        self._memo.move_to_end(key)
        return self._memo[key][0]

    def put(self, key: str, result: xr.DataArray, node: Node) -> None:
        """Memoize ``result``; the least recently used results go when over ``max_bytes``.

        The node is kept with it so the tensors its key identifies stay alive (their
        identities cannot be reused by new tensors).

        Examples
        --------
        >>> import xarray as xr
        >>> s = Session(max_bytes=16)
        >>> s.put("a", xr.DataArray([1.0, 2.0]), None); s.put("b", xr.DataArray([3.0, 4.0]), None)
        >>> s.get("a") is None, len(s), s.nbytes  # "a" was least recently used
        (True, 1, 16)
        """
        size = result.nbytes
        if size > self.max_bytes:
            return
        if key in self._memo:
            self.nbytes -= self._memo.pop(key)[0].nbytes
        self._memo[key] = (result, node)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, (old, _node) = self._memo.popitem(last=False)
            self.nbytes -= old.nbytes


_default = Session()


def session() -> Session:
    """The session ``ia.compute`` uses: the innermost ``with Session():``, else the default.

    Returns
    -------
    Session

    Examples
    --------
    >>> import algebra as ia
    >>> with ia.Session() as s:
    ...     ia.session() is s
    True
    >>> ia.session() is s
    False
    """
    active = _current.get()
    return _default if active is None else active


def memo_key(node: Node, states: dict[int, str]) -> str:
    """The memo key of ``node``: its structure, its models' state tokens and the precision
    (the one option that changes results beyond float rounding).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Linear(4, 3)
    >>> node = ia.model(net).on(torch.rand(2, 4)).saliency(0).node
    >>> memo_key(node, {id(net): "state"}) == node.token + "|state|fp32"
    True
    """
    from .evaluate import leaves

    modules = {id(source_of(leaf.view).wrapped_model.module) for leaf in leaves([node])}
    state = "|".join(states[key] for key in sorted(modules, key=lambda k: states[k]))
    return f"{node.token}|{state}|{options.precision}"

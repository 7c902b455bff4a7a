"""The memo: computed results in a least-recently-used store, under keys that say when a
result may be reused (expression structure, the models' state, the precision)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import xarray as xr

from ..config import options
from ..ir.node import Node


class Memo:
    """Results by key, least recently used first out, up to ``max_bytes`` (0 keeps nothing).

    The node is kept with its result so the tensors its key identifies stay alive (their
    identities cannot be reused by new tensors). Safe to share between threads: every
    read and write holds the memo's lock.

    Examples
    --------
    >>> memo = Memo(max_bytes=16)
    >>> memo.put("a", xr.DataArray([1.0, 2.0]), None); memo.put("b", xr.DataArray([3.0, 4.0]), None)
    >>> memo.get("a") is None, len(memo), memo.nbytes  # "a" was least recently used
    (True, 1, 16)
    """

    def __init__(self, max_bytes: int | None = None):
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0
        ):
            raise ValueError(f"max_bytes: expected a number of bytes >= 0; got {max_bytes!r}")
        self._max_bytes = max_bytes
        self._memo: OrderedDict[str, tuple[xr.DataArray, Node | None]] = OrderedDict()
        self.nbytes = 0
        self.lock = threading.RLock()

    @property
    def max_bytes(self) -> int:
        """The memo's bound: as given, else the current ``ia.options.session_bytes``."""
        return options.session_bytes if self._max_bytes is None else self._max_bytes

    def __len__(self) -> int:
        return len(self._memo)

    def clear(self) -> None:
        """Forget every memoized result.

        Examples
        --------
        >>> m = Memo(); m.clear(); len(m)
        0
        """
        with self.lock:
            self._memo.clear()
            self.nbytes = 0

    def get(self, key: str) -> xr.DataArray | None:
        """The memoized result under ``key`` (marked recently used), or ``None``.

        Examples
        --------
        >>> Memo().get("nothing") is None
        True
        """
        with self.lock:
            if key not in self._memo:
                return None
            self._memo.move_to_end(key)
            return self._memo[key][0]

    def put(self, key: str, result: xr.DataArray, node: Node | None) -> None:
        """Memoize ``result``; the least recently used results go when over ``max_bytes``.

        Examples
        --------
        >>> m = Memo(max_bytes=0); m.put("a", xr.DataArray([1.0]), None); len(m)
        0
        """
        size = result.nbytes
        with self.lock:
            if size > self.max_bytes:
                return
            if key in self._memo:
                self.nbytes -= self._memo.pop(key)[0].nbytes
            self._memo[key] = (result, node)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, (old, _node) = self._memo.popitem(last=False)
                self.nbytes -= old.nbytes


def memo_key(node: Node, modules: Iterable[int], states: dict[int, str]) -> str:
    """The memo key of ``node``: its structure, the state tokens of the ``modules`` it runs
    and the precision (the one option that changes results beyond float rounding).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Linear(4, 3)
    >>> node = ia.model(net).on(torch.rand(2, 4)).saliency(0).node
    >>> memo_key(node, [id(net)], {id(net): "state"}) == node.token + "|state|fp32"
    True
    """
    state = "|".join(sorted(states[key] for key in modules))
    return f"{node.token}|{state}|{options.precision}"

"""What-if edits of a query's inputs, mixed into :class:`~algebra.api.query.Query`.

Each returns a new query on edited inputs (a patch set to a value, a window copied from
another query's inputs, or the inputs mapped through a function), made lazily when the
query is computed; the model is not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ir.node import Node, Ref
from ..ir.views import Edit, base_of, rebased, source_of
from ..ir.windows import check_window
from ..kernels.checks import as_patch, fingerprint


class WhatIfMethods:
    """``patch``, ``replace`` and ``edit`` (mixed into ``Query``)."""

    node: Node

    def _with(self, node: Node) -> Any:
        raise NotImplementedError  # Query keeps its filters

    def _edited(self, kind: str, window: Any, value: Any) -> Any:
        base = base_of(self.node)
        edit = Edit(base, kind, None if window is None else check_window(window), value)
        return self._with(rebased(self.node, edit))

    def patch(self, window: Any, value: Any = 0.0) -> Any:
        """What-if: the inputs with ``window`` set to ``value``, made lazily.

        Parameters
        ----------
        window : (r0, r1, c0, c1)
            Rows ``r0:r1`` and columns ``c0:c1`` of the inputs.
        value : float or torch.Tensor, default 0.0
            A number, a tensor shaped like the patch (``[..., r1 - r0, c1 - c0]``), or one
            broadcastable to the inputs.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
        >>> q = ia.model(net).on(torch.rand(3, 1, 4, 4))
        >>> q.patch((0, 2, 0, 2), 1.0)
        Query(Sequential on inputs [3, 1, 4, 4] (edited))
        """
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            stored: Any = float(value)
        else:
            window_ = check_window(window)
            tensor = as_patch(value, source_of(self.node).inputs.value, window_)
            stored = Ref(tensor, fingerprint(tensor))
        return self._edited("patch", window, stored)

    def replace(self, window: Any, with_: Any) -> Any:
        """What-if: the inputs with ``window`` copied from another query's inputs.

        Parameters
        ----------
        window : (r0, r1, c0, c1)
        with_ : Query
            Inputs of the same shape (their own edits apply first).

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> m = ia.model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval())
        >>> a, b = m.on(torch.zeros(2, 1, 4, 4)), m.on(torch.ones(2, 1, 4, 4))
        >>> a.replace((0, 4, 0, 2), with_=b)
        Query(Sequential on inputs [2, 1, 4, 4] (edited))
        """
        other = getattr(with_, "node", None)
        if not isinstance(other, Node) or other.role != "view":
            raise TypeError(f"with_: expected a Query (model.on(...)); got {type(with_).__name__}")
        return self._edited("replace", window, base_of(other))

    def edit(self, fn: Callable[[Any], Any]) -> Any:
        """What-if: the inputs mapped through ``fn`` (a batch in, a batch of the same shape out).

        ``fn`` runs once, lazily, without gradients, when the query is computed.

        Parameters
        ----------
        fn : callable
            ``fn(inputs) -> tensor`` with the inputs' shape and dtype.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 2).eval()).on(torch.rand(3, 4))
        >>> q.edit(lambda x: x.flip(1)).saliency(0).compute().shape
        (3, 4)
        """
        if not callable(fn):
            raise TypeError(f"fn: expected a callable; got {type(fn).__name__}")
        name = getattr(fn, "__qualname__", type(fn).__name__)
        return self._edited("fn", None, Ref(fn, f"fn:{id(fn)}:{name}"))

"""Every call of a reused layer, attributed: one attribution per call, stacked along a
``call`` dim.

``q.layer(name, call="all").method(...)`` builds one attribution per call of the module
(``call=0``, ``call=1``, ...): gradient methods share the forward and the batched backward
of the inputs (each call is one more tensor differentiated), path methods run one path
per call (each through its own call). :class:`LayerCalls` stacks their results.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .attribution import Attribution
from .layer_keys import layer_key
from .node import Node
from .views import Layer, Window


def at_call(view: Node, call: int) -> Node:
    """``view`` with its layer's ``call="all"`` made one call.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> relu = torch.nn.ReLU()
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), relu, torch.nn.Linear(2, 2), relu)
    >>> q = ia.model(net).on(torch.rand(3, 2)).layer("1", call="all")
    >>> at_call(q.node, 1).key
    '1[call=1]'
    """
    if isinstance(view, Layer):
        return replace(view, call=call)
    if isinstance(view, Window):
        return replace(view, view=at_call(view.view, call))
    return view


@dataclass(frozen=True, eq=False)
class LayerCalls(Node):
    """The attributions of one method and target at each call of a layer, in call order."""

    parts: tuple[Attribution, ...]
    op = "calls"

    @property
    def children(self) -> tuple[Node, ...]:
        return self.parts

    @property
    def layer(self) -> str:
        """The layer's key with ``call=all``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> relu = torch.nn.ReLU()
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), relu, torch.nn.Linear(2, 2), relu)
        >>> ia.model(net).on(torch.rand(3, 2)).layer("1", call="all").saliency(0).node.layer
        '1[call=all]'
        """
        found = _layer(self.parts[0].view)
        return layer_key(found.name, "all", found.output, found.input)

    def validate(self) -> None:
        if not self.parts or not all(isinstance(p, Attribution) for p in self.parts):
            raise ValueError("calls: expected one attribution per call of a layer")
        first = self.parts[0]
        for k, part in enumerate(self.parts):
            if (part.method, part.target, part.params) != (
                first.method,
                first.target,
                first.params,
            ):
                raise ValueError("calls: every call's attribution has the same method and target")
            if at_call(part.view, 0) != at_call(first.view, 0) or _layer(part.view).call != k:
                raise ValueError("calls: the attributions differ by their layer's call only")


def _layer(view: Node) -> Layer:
    while not isinstance(view, Layer):
        view = view.children[0]
    return view

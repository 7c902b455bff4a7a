"""An attribution node from a query's view, method, target and parameters: the target
checked on the model (units, positions, the model's ``output=``), and one attribution per
call of a layer selected with ``call="all"``."""

from __future__ import annotations

from typing import Any

from ..ir.attribution import Attribution
from ..ir.layer_calls import LayerCalls, at_call
from ..ir.node import Node
from ..ir.targets import Target
from ..ir.views import layer_node, source_of
from ..kernels.probes import layer_calls
from .outputs import checked_target, first_sample
from .units import resolved_target


def attribution_node(
    view: Node,
    method: str,
    target: Any,
    params: tuple[tuple[str, Any], ...],
    generated: Target | None = None,
) -> Node:
    """The node of ``method`` of ``target`` on ``view``: an :class:`Attribution`, or a
    :class:`~algebra.ir.layer_calls.LayerCalls` of one per call.

    ``generated`` is the target ``"generated"`` names (the tokens of ``q.generated``).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> relu = torch.nn.ReLU()
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), relu, torch.nn.Linear(3, 3), relu)
    >>> q = ia.model(net).on(torch.rand(4, 2))
    >>> node = attribution_node(q.layer("1", call="all").node, "saliency", 0, (("abs", True),))
    >>> node.op, [part.view.key for part in node.parts]
    ('calls', ['1[call=0]', '1[call=1]'])
    >>> attribution_node(q.node, "saliency", "generated", (("abs", True),))
    Traceback (most recent call last):
    ValueError: target: 'generated' names the tokens a model generated from its prompts; build the query with q.generated(steps) first
    """
    if isinstance(target, str) and target == "generated":
        if generated is None:
            raise ValueError(
                "target: 'generated' names the tokens a model generated from its prompts; "
                "build the query with q.generated(steps) first"
            )
        target = generated
    resolved = checked_target(view, resolved_target(view, target))
    selected = layer_node(view)
    if selected is None or selected.call != "all":
        return Attribution(view, method, resolved, params)
    source = source_of(view)
    x = first_sample(source.inputs.value)
    if x is None:
        raise ValueError(
            "call: call='all' counts the layer's calls on the inputs, which are read lazily "
            "here; choose one call with call=k"
        )
    count = len(layer_calls(source.model.torch_module, x, selected.name))
    parts = tuple(Attribution(at_call(view, k), method, resolved, params) for k in range(count))
    return LayerCalls(parts)

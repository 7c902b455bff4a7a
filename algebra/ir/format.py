"""Every one-line description of a node: for ``repr``, ``explain()``, graphs and result attributes.

Descriptions dispatch on the node type through one table per concern: ``describe_expr``
(the whole expression as the user chained it), ``label`` (one node, for graphs) and
``result_name`` (the ``name`` of a result's ``DataArray``).
"""

from __future__ import annotations

from .attribution import Attribution
from .joins import AntiJoin, Disagreement, Join
from .metrics import Metric
from .neurons import CounterfactualNeurons, describe_neurons
from .node import Node, Ref, dispatch_table, entries
from .relational import (
    VERBS,
    Abs,
    GroupReduce,
    Normalize,
    Reduce,
    Select,
    Square,
    TopKFeatures,
    Variance,
    Where,
    unpacked,
)
from .views import (
    Edit,
    Layer,
    Noise,
    Source,
    Window,
    base_of,
    layer_of,
    noise_of,
    source_of,
    window_of,
)


def shown(value: object) -> str:
    """A parameter value as plans and attributes show it (tensors by shape).

    Examples
    --------
    >>> shown(0.5), shown("gausslegendre")
    ('0.5', "'gausslegendre'")
    """
    if isinstance(value, Ref) and hasattr(value.value, "shape"):
        return f"tensor{list(value.value.shape)}"
    if isinstance(value, Node):  # another query's inputs
        return f"inputs{list(source_of(value).shape)}"
    return repr(value)


def describe(node: Attribution, with_layer: bool = True) -> str:
    """One line for an attribution node, as the user would have written it.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> describe(q.integrated_gradients(ia.topk(2), steps=8).node)
    "integrated_gradients(target=topk(2), steps=8, method='gausslegendre', baseline=0.0)"
    """
    params = [f"target={node.target.describe()}"] if node.target.kind != "none" else []
    for key, value in node.params:
        params.append(f"{key}={shown(value)}")
    layer = layer_of(node.view) if with_layer else None
    at = f" at layer {layer!r}" if layer else ""
    window = window_of(node.view)
    at += f" in window {list(window)}" if window else ""
    at += " on edited inputs" if isinstance(base_of(node.view), Edit) else ""
    noise = noise_of(node.view)
    at += f" on {noise.describe()}" if noise is not None else ""
    return f"{node.method}({', '.join(params)}){at}"


def describe_step(node: Node) -> str:
    """The operation a relational verb applies, as the user would have chained it.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> describe_step(q.saliency(0).isel(sample=[0]).node)
    'isel(sample=[0])'
    """
    return _step(node)


def describe_expr(node: Node) -> str:
    """The whole expression on one line.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Linear(4, 3).eval(), name="lin")
    >>> a, b = m.on(torch.rand(2, 4)).saliency(0), m.on(torch.rand(2, 4)).saliency(0)
    >>> describe_expr(a.join(b).mean("sample").node)
    "join(saliency(target=0, abs=True), saliency(target=0, abs=True), how='mean').mean(['sample'])"
    """
    return _expr(node)


def label(node: Node) -> str:
    """A short human-readable label for one node (graphs show one per vertex).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4))
    >>> label(q.node), label(q.saliency(0).abs().node)
    ("source(model='lin', inputs=[2, 4])", 'abs')
    """
    return _label(node)


def result_name(node: Node) -> str:
    """The ``name`` of a node's ``DataArray``: the method's, or ``join``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> result_name(q.saliency(0).mean().node)
    'saliency'
    """
    return _name(node)


# -- describe_step: the verbs -------------------------------------------------------------
_step = dispatch_table("describe_step", role="verb")


@_step.register
def _(node: Where) -> str:
    return f"where({node.predicate.to_query()})"


@_step.register
def _(node: Select) -> str:
    args = ", ".join(f"{d}={unpacked(v)!r}" for d, v in node.indexers)
    return f"{'sel' if node.by_label else 'isel'}({args})"


@_step.register
def _(node: Reduce) -> str:
    return f"{node.how}({'' if node.dims is None else repr(list(node.dims))})"


@_step.register
def _(node: Abs) -> str:
    return "abs()"


@_step.register
def _(node: Normalize) -> str:
    dims = "" if node.dims is None else f", dim={list(node.dims)!r}"
    return f"normalize({node.how!r}{dims})"


@_step.register
def _(node: TopKFeatures) -> str:
    dims = "" if node.dims is None else f", dim={list(node.dims)!r}"
    return f"topk_features({node.k}{dims}, by={node.by!r})"


@_step.register
def _(node: GroupReduce) -> str:
    return f"groupby({node.key!r}).{node.how}()"


@_step.register
def _(node: Square) -> str:
    return "square()"


@_step.register
def _(node: Variance) -> str:
    return f"var({'' if node.dims is None else repr(list(node.dims))})"


# -- describe_expr: every computed node ----------------------------------------------------
_expr = dispatch_table("describe_expr")


@_expr.register
def _(node: Attribution) -> str:
    return describe(node)


@_expr.register
def _(node: Join) -> str:
    return f"join({_expr(node.left)}, {_expr(node.right)}, how={node.how!r})"


@_expr.register
def _(node: AntiJoin) -> str:
    return f"antijoin({_expr(node.left)}, {_expr(node.right)})"


@_expr.register
def _(node: Disagreement) -> str:
    return f"disagreement({_expr(node.part)})"


@entries(_expr, VERBS)
def _(node: Node) -> str:
    return f"{_expr(node.children[0])}.{_step(node)}"


@_expr.register
def _(node: Metric) -> str:
    return f"{_expr(node.child)}.{describe_metric(node)}"


def describe_metric(node: Metric) -> str:
    """A metric as the user chained it, its parameters included.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> describe_metric(q.saliency(0).deletion(steps=4).node)
    'deletion(steps=4, baseline=0.0)'
    """
    return f"{node.kind}({', '.join(f'{k}={shown(v)}' for k, v in node.params)})"


@_expr.register
def _(node: CounterfactualNeurons) -> str:
    return describe_neurons(node)


# -- label: every node, one vertex of a graph ----------------------------------------------
_label = dispatch_table("label", role="all")


@_label.register
def _(node: Source) -> str:
    return f"source(model={node.model.name!r}, inputs={list(node.shape)})"


@_label.register
def _(node: Layer) -> str:
    return f"layer({node.name!r})"


@_label.register
def _(node: Attribution) -> str:
    return describe(node, with_layer=False)


@_label.register
def _(node: Noise) -> str:
    return node.describe()


@entries(_label, (Window, Edit, Join, AntiJoin, Disagreement, CounterfactualNeurons, *VERBS))
def _(node: Node) -> str:
    return node.op


@_label.register
def _(node: Metric) -> str:
    return node.kind


# -- result_name: the name of a computed node's DataArray ----------------------------------
_name = dispatch_table("result_name")


@_name.register
def _(node: Attribution) -> str:
    return node.method


@_name.register
def _(node: Join) -> str:
    return "join"


@_name.register
def _(node: AntiJoin) -> str:
    return node.left.method


@_name.register
def _(node: Disagreement) -> str:
    return node.part.method


@entries(_name, (*VERBS, Metric))
def _(node: Node) -> str:
    return _name(node.children[0])


@_name.register
def _(node: CounterfactualNeurons) -> str:
    return node.op

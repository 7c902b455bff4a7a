"""One-line descriptions of expressions, for ``repr``, ``explain()`` and result attributes."""

from __future__ import annotations

from .joins import AntiJoin, Disagreement, Join
from .nodes import Node
from .operators import Attribution
from .relational import Abs, GroupReduce, Normalize, Reduce, Select, TopKFeatures, Where, unpacked


def describe_step(node: Node) -> str:
    """The operation a derived node applies, as the user would have chained it.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> describe_step(q.saliency(0).isel(sample=[0]).node)
    'isel(sample=[0])'
    """
    if isinstance(node, Where):
        return f"where({node.predicate.to_query()})"
    if isinstance(node, Select):
        args = ", ".join(f"{d}={unpacked(v)!r}" for d, v in node.indexers)
        return f"{'sel' if node.by_label else 'isel'}({args})"
    if isinstance(node, Reduce):
        return f"{node.how}({'' if node.dims is None else repr(list(node.dims))})"
    if isinstance(node, Abs):
        return "abs()"
    if isinstance(node, Normalize):
        dims = "" if node.dims is None else f", dim={list(node.dims)!r}"
        return f"normalize({node.how!r}{dims})"
    if isinstance(node, TopKFeatures):
        dims = "" if node.dims is None else f", dim={list(node.dims)!r}"
        return f"topk_features({node.k}{dims}, by={node.by!r})"
    if isinstance(node, GroupReduce):
        return f"groupby({node.key!r}).{node.how}()"
    return node.op


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
    from .planner import describe

    if isinstance(node, Attribution):
        return describe(node)
    if isinstance(node, Join):
        return f"join({describe_expr(node.left)}, {describe_expr(node.right)}, how={node.how!r})"
    if isinstance(node, AntiJoin):
        return f"antijoin({describe_expr(node.left)}, {describe_expr(node.right)})"
    if isinstance(node, Disagreement):
        return f"disagreement({describe_expr(node.part)})"
    return f"{describe_expr(node.children[0])}.{describe_step(node)}"

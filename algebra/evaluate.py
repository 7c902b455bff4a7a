"""Evaluate derived nodes (verbs, joins) over the frames of their attributions.

Runs after the gradient passes, on the model's device; the frames only become xarray at
the end (:func:`algebra.results.to_xarray`). Each node is evaluated once per computation.
"""

from __future__ import annotations

from dataclasses import replace

from .describe import describe_step
from .joins import AntiJoin, Disagreement, Join
from .kernels import frame as ops
from .kernels.frame import Frame
from .nodes import Node
from .operators import Attribution, source_of
from .relational import (
    Abs,
    GroupReduce,
    Normalize,
    Reduce,
    Select,
    TopKFeatures,
    Where,
    unpacked,
)


def leaves(roots: list[Node]) -> list[Attribution]:
    """The attribution nodes the roots are computed from, each once, in order.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Linear(4, 3).eval())
    >>> a, b = m.on(torch.rand(2, 4)).saliency(0), m.on(torch.rand(2, 4)).saliency(0)
    >>> len(leaves([a.join(b).mean().node, a.node]))
    2
    """
    found: dict[str, Attribution] = {}
    for root in roots:
        for node in root.walk():
            if isinstance(node, Attribution):
                found.setdefault(node.token, node)
    return list(found.values())


def result_name(node: Node) -> str:
    """The ``name`` of a node's ``DataArray``: the method's, or ``join``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> result_name(q.saliency(0).mean().node)
    'saliency'
    """
    if isinstance(node, Attribution):
        return node.method
    if isinstance(node, Join):
        return "join"
    if isinstance(node, AntiJoin):
        return node.left.method
    if isinstance(node, Disagreement):
        return node.part.method
    return result_name(node.children[0])


def _step(frame: Frame, text: str) -> Frame:
    done = frame.attrs.get("operations")
    attrs = {**frame.attrs, "operations": f"{done} | {text}" if done else text}
    return replace(frame, attrs=attrs)


def evaluate(root: Node, frames: dict[str, Frame], cache: dict[str, Frame]) -> Frame:
    """The frame of ``root``, from its attributions' ``frames`` (by token).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> e = q.saliency(0).sum("feature")
    >>> ia.compute(e)[0].attrs["operations"]
    "sum(['feature'])"
    """
    if root.token in cache:
        return cache[root.token]
    node = root
    if isinstance(node, Attribution):
        out = frames[node.token]
    elif isinstance(node, Join):
        left, right = evaluate(node.left, frames, cache), evaluate(node.right, frames, cache)
        out = ops.combine(left, right, node.how)
        out = replace(out, attrs={**left.attrs, "join": node.how})
    elif isinstance(node, AntiJoin):
        left, right = evaluate(node.left, frames, cache), evaluate(node.right, frames, cache)
        out = ops.stack(left, right)
        attrs = {k: v for k, v in left.attrs.items() if k != "baseline"}
        out = replace(out, attrs={**attrs, "antijoin": "inputs"})
    elif isinstance(node, Disagreement):
        part = evaluate(node.part, frames, cache)
        left, right = node.left_model.value.name, node.right_model.value.name
        out = replace(part, attrs={**part.attrs, "antijoin": f"models {left!r} - {right!r}"})
    else:
        out = _verb(node, evaluate(node.children[0], frames, cache))
    cache[root.token] = out
    return out


def _verb(node: Node, frame: Frame) -> Frame:
    if isinstance(node, Where):
        if "sample" not in frame.dims or not frame.columns:
            raise ValueError(
                f"where: {node.predicate.to_query()!r} filters samples, but the result no "
                "longer has per-sample columns (filter before reducing or grouping samples)"
            )
        classes = source_of(node).wrapped_model.classes
        lowered = node.predicate.lowered(classes)
        n = frame.data.shape[frame.axis("sample")]
        mask = ops.evaluate(lowered, frame.columns, n, frame.data.device)
        out = ops.keep_samples(frame, mask)
    elif isinstance(node, Select):
        indexers = {}
        for dim, value in node.indexers:
            value = unpacked(value)
            if node.by_label:
                value = (
                    _label_slice(frame, dim, value)
                    if isinstance(value, slice)
                    else ops.positions(frame, dim, value)
                )
            indexers[dim] = value
        out = ops.isel(frame, indexers)
    elif isinstance(node, Reduce):
        out = ops.reduce(frame, node.dims, node.how)
    elif isinstance(node, Abs):
        out = replace(frame, data=frame.data.abs())
    elif isinstance(node, Normalize):
        out = ops.normalize(frame, node.dims, node.how)
    elif isinstance(node, TopKFeatures):
        out = ops.topk_features(frame, node.k, node.dims, node.by == "abs")
    elif isinstance(node, GroupReduce):
        out = ops.group_reduce(frame, node.key, node.how)
    else:
        raise TypeError(f"cannot evaluate a {type(node).__name__} node")
    return _step(out, describe_step(node))


def _label_slice(frame: Frame, dim: str, value: slice) -> slice:
    # A slice of labels covers both ends, as in xarray and pandas.
    frame.axis(dim, argument="sel")
    if dim not in frame.coords or frame.coords[dim][0] != (dim,):
        return value  # no labels: positions, as given
    start = None if value.start is None else ops.positions(frame, dim, value.start)
    stop = None if value.stop is None else ops.positions(frame, dim, value.stop) + 1
    return slice(start, stop, value.step)

"""Evaluate derived nodes (verbs, joins) over the frames of their attributions.

Runs after the attribution jobs and the metrics, on the model's device; the frames only become xarray at
the end (:func:`algebra.results.arrays.to_xarray`). Each node is evaluated once per
computation; each node type has one entry in the evaluation table.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..ir.attribution import Attribution
from ..ir.format import describe_step
from ..ir.joins import AntiJoin, Disagreement, Join
from ..ir.metrics import Metric
from ..ir.neurons import CounterfactualNeurons
from ..ir.node import Node, dispatch_table, entries
from ..ir.relational import (
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
from ..ir.views import source_of
from ..kernels import frame as ops
from ..kernels.combine import combine, stack
from ..kernels.frame import Frame
from ..kernels.predicates import evaluate as holds
from ..kernels.predicates import keep_samples
from .neurons import neurons_dataset


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
    if root.token not in cache:
        cache[root.token] = _evaluate(root, frames, cache)
    return cache[root.token]


_evaluate = dispatch_table("evaluate")


@_evaluate.register(Attribution)
@_evaluate.register(Metric)
def _(node: Node, frames: dict[str, Frame], cache: dict[str, Frame]) -> Frame:
    # Attributions come from the jobs, metrics from phase two (runtime/metrics.py).
    return frames[node.token]


@_evaluate.register
def _(node: Join, frames: dict[str, Frame], cache: dict[str, Frame]) -> Frame:
    left, right = evaluate(node.left, frames, cache), evaluate(node.right, frames, cache)
    out = combine(left, right, node.how)
    return replace(out, attrs={**left.attrs, "join": node.how})


@_evaluate.register
def _(node: AntiJoin, frames: dict[str, Frame], cache: dict[str, Frame]) -> Frame:
    left, right = evaluate(node.left, frames, cache), evaluate(node.right, frames, cache)
    out = stack(left, right)
    attrs = {k: v for k, v in left.attrs.items() if k != "baseline"}
    return replace(out, attrs={**attrs, "antijoin": "inputs"})


@_evaluate.register
def _(node: Disagreement, frames: dict[str, Frame], cache: dict[str, Frame]) -> Frame:
    part = evaluate(node.part, frames, cache)
    left, right = node.left_model.name, node.right_model.name
    return replace(part, attrs={**part.attrs, "antijoin": f"models {left!r} - {right!r}"})


@_evaluate.register
def _(node: CounterfactualNeurons, frames: dict[str, Frame], cache: dict[str, Frame]) -> Any:
    # Its own phase (runtime/neurons.py): one forward, then one batched optimisation; the
    # result is a whole Dataset, already labelled, not a frame for verbs.
    return neurons_dataset(node)


@entries(_evaluate, VERBS)
def _(node: Node, frames: dict[str, Frame], cache: dict[str, Frame]) -> Frame:
    return stepped(node, _verb(node, evaluate(node.children[0], frames, cache)))


def stepped(node: Node, frame: Frame) -> Frame:
    """``frame`` (the result of the verb ``node``) with the verb added to its ``operations``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4)).saliency(0).abs()
    >>> stepped(e.node, Frame(torch.zeros(2), ("sample",), attrs={"operations": "x"})).attrs
    {'operations': 'x | abs()'}
    """
    done = frame.attrs.get("operations")
    step = describe_step(node)
    return replace(frame, attrs={**frame.attrs, "operations": f"{done} | {step}" if done else step})


# -- the verbs, one entry each --------------------------------------------------------------
_verb = dispatch_table("evaluate_verb", role="verb")


@_verb.register
def _(node: Where, frame: Frame) -> Frame:
    if "sample" not in frame.dims or not frame.columns:
        raise ValueError(
            f"where: {node.predicate.to_query()!r} filters samples, but the result no "
            "longer has per-sample columns (filter before reducing or grouping samples)"
        )
    lowered = node.predicate.lowered(source_of(node).model.classes)
    n = frame.data.shape[frame.axis("sample")]
    return keep_samples(frame, holds(lowered, frame.columns, n, frame.data.device))


@_verb.register
def _(node: Select, frame: Frame) -> Frame:
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
    return ops.isel(frame, indexers)


@_verb.register
def _(node: Reduce, frame: Frame) -> Frame:
    return ops.reduce(frame, node.dims, node.how)


@_verb.register
def _(node: Abs, frame: Frame) -> Frame:
    return replace(frame, data=frame.data.abs())


@_verb.register
def _(node: Normalize, frame: Frame) -> Frame:
    return ops.normalize(frame, node.dims, node.how)


@_verb.register
def _(node: TopKFeatures, frame: Frame) -> Frame:
    return ops.topk_features(frame, node.k, node.dims, node.by == "abs")


@_verb.register
def _(node: GroupReduce, frame: Frame) -> Frame:
    return ops.group_reduce(frame, node.key, node.how)


@_verb.register
def _(node: Square, frame: Frame) -> Frame:
    return replace(frame, data=frame.data.square())


@_verb.register
def _(node: Variance, frame: Frame) -> Frame:
    return ops.reduce(frame, node.dims, "var")


def _label_slice(frame: Frame, dim: str, value: slice) -> slice:
    # A slice of labels covers both ends, as in xarray and pandas.
    frame.axis(dim, argument="sel")
    if dim not in frame.coords or frame.coords[dim][0] != (dim,):
        return value  # no labels: positions, as given
    start = None if value.start is None else ops.positions(frame, dim, value.start)
    stop = None if value.stop is None else ops.positions(frame, dim, value.stop) + 1
    return slice(start, stop, value.step)

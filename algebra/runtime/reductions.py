"""What each node does to the sample axis when the samples are cut into chunks, and the
reductions over samples computed as partial results per chunk, then combined.

Each node of a graph is, per chunk: ``rows`` (one result row per sample of the chunk:
attributions, joins, verbs over other dims), ``filtered`` (rows, some dropped by a
``where``), ``reduced`` (a ``mean``/``sum`` over samples or a ``groupby``: a partial sum
and count per chunk, added up) or ``upper`` (computed from reduced results once they are
combined). A verb that would need every sample at once (selecting samples, normalizing
over them) is refused with its name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..ir.attribution import Attribution
from ..ir.inputs import InputPart
from ..ir.joins import AntiJoin, Disagreement, Join
from ..ir.layer_calls import LayerCalls
from ..ir.metrics import Metric
from ..ir.neurons import CounterfactualNeurons
from ..ir.node import Node, dispatch_table, entries, walk
from ..ir.relational import (
    Abs,
    GroupReduce,
    Normalize,
    Reduce,
    Select,
    Square,
    TopKFeatures,
    Variance,
    Where,
)
from ..kernels import frame as ops
from ..kernels.frame import Frame
from .evaluate import stepped

ROWS, FILTERED, REDUCED, UPPER = "rows", "filtered", "reduced", "upper"
_PER_SAMPLE = (ROWS, FILTERED)


@dataclass(frozen=True)
class Layout:
    """How the roots of a computation are computed over chunks.

    ``rows``: the roots whose per-chunk results are concatenated along ``sample``;
    ``crossings``: the reductions over samples (partials per chunk, combined);
    ``finished``: the roots computed from combined reductions, with the crossings each
    needs; ``eager``: those of them that a ``groupby`` feeds (their groups are data, so
    they are computed at once).
    """

    rows: tuple[str, ...]
    crossings: tuple[str, ...]
    finished: dict[str, tuple[str, ...]]
    eager: frozenset[str]


def layout(roots: list[Node]) -> Layout:
    """Classify every node of ``roots``'s graph, refusing what chunks cannot compute.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4), labels=[0, 1] * 3)
    >>> a, m, g = q.saliency(0), q.saliency(0).mean("sample"), q.saliency(0).groupby("label").mean()
    >>> out = layout([a.node, m.node, g.node])
    >>> out.rows == (a.node.token,), len(out.crossings), out.eager == {g.node.token}
    (True, 2, True)
    >>> layout([q.saliency(0).isel(sample=[0, 1]).node])
    Traceback (most recent call last):
    ValueError: isel: selecting samples (sample=...) needs every chunk; on dask, select the inputs before model.on(...), or select from the computed result
    """
    state: dict[str, str] = {}
    nodes = walk(roots)
    for node in nodes:
        if node.role != "view":
            state[node.token] = _flow(node, tuple(state.get(c.token, ROWS) for c in node.children))
    by_token = {n.token: n for n in nodes}
    rows, finished, eager = [], {}, set()
    crossings: dict[str, None] = {}
    for root in roots:
        if state[root.token] == ROWS:
            rows.append(root.token)
        elif state[root.token] == FILTERED:
            raise ValueError(
                "where: on dask, the number of samples a filter keeps is known only once "
                "computed; reduce the kept samples (mean, sum, groupby), or compute without "
                "the filter and filter the result with xarray (r.where(..., drop=True))"
            )
        else:
            needed = [n.token for n in walk([root]) if state.get(n.token) == REDUCED]
            crossings.update(dict.fromkeys(needed))
            finished[root.token] = tuple(needed)
            if any(isinstance(by_token[t], GroupReduce) for t in needed):
                eager.add(root.token)
    return Layout(tuple(rows), tuple(crossings), finished, frozenset(eager))


_flow = dispatch_table("partition")


def _passed(states: tuple[str, ...], what: str) -> str:
    """The state of a node that keeps its children's rows as they are."""
    if all(s in _PER_SAMPLE for s in states):
        return FILTERED if FILTERED in states else ROWS
    if all(s not in _PER_SAMPLE for s in states):
        return UPPER
    raise ValueError(
        f"{what}: on dask, one side is reduced over samples and the other is not; "
        "reduce both sides, or neither"
    )


@_flow.register
def _(node: Attribution, states: tuple[str, ...]) -> str:
    return ROWS


@entries(_flow, (Join, AntiJoin, Disagreement, LayerCalls, Abs, Square, InputPart))
def _(node: Node, states: tuple[str, ...]) -> str:
    return _passed(states, node.op)


@_flow.register
def _(node: Where, states: tuple[str, ...]) -> str:
    return FILTERED if states[0] in _PER_SAMPLE else UPPER


@_flow.register
def _(node: Select, states: tuple[str, ...]) -> str:
    if states[0] in _PER_SAMPLE and any(dim == "sample" for dim, _ in node.indexers):
        verb = "sel" if node.by_label else "isel"
        raise ValueError(
            f"{verb}: selecting samples (sample=...) needs every chunk; on dask, select the "
            "inputs before model.on(...), or select from the computed result"
        )
    return _passed(states, "select")


@_flow.register
def _(node: Reduce, states: tuple[str, ...]) -> str:
    if states[0] in _PER_SAMPLE and (node.dims is None or "sample" in node.dims):
        return REDUCED
    return _passed(states, node.how)


@entries(_flow, (Normalize, TopKFeatures))
def _(node: Node, states: tuple[str, ...]) -> str:
    dims = node.dims  # type: ignore[attr-defined]
    if states[0] in _PER_SAMPLE and dims is not None and "sample" in dims:
        raise ValueError(
            f"{node.op}: over the sample dim, each value depends on every chunk; on dask, "
            f"{node.op} over other dims, or apply it to the computed result"
        )
    return _passed(states, node.op)


@_flow.register
def _(node: Variance, states: tuple[str, ...]) -> str:
    if states[0] in _PER_SAMPLE and (node.dims is None or "sample" in node.dims):
        raise ValueError(
            "var: over the sample dim, the mean it is taken around needs every chunk; on "
            "dask, take var over other dims (e.g. 'noise'), or apply it to the computed result"
        )
    return _passed(states, node.op)


@_flow.register
def _(node: GroupReduce, states: tuple[str, ...]) -> str:
    return REDUCED if states[0] in _PER_SAMPLE else UPPER


@_flow.register
def _(node: Metric, states: tuple[str, ...]) -> str:
    # One value per sample and target, from that sample's map: chunks compute their own.
    if states[0] not in _PER_SAMPLE:
        raise ValueError(
            f"{node.kind}: a metric evaluates per-sample maps; on dask, compute the metric "
            "first, then reduce it over samples"
        )
    return states[0]


@_flow.register
def _(node: CounterfactualNeurons, states: tuple[str, ...]) -> str:
    raise ValueError(
        "counterfactual_neurons: the votes count every mistake of the class together, so "
        "they do not split into chunks; compute them without client= or scheduler="
    )


@dataclass(frozen=True)
class Partial:
    """A reduction over some samples: ``frame`` holds the float64 sums (on the host), with
    the reduced result's dims and coordinates; ``counts`` the number of values summed
    (per group for a ``groupby``, whose groups are ``frame``'s ``key`` coordinate)."""

    frame: Frame
    counts: torch.Tensor
    key: str | None
    dtype: torch.dtype


def partial(node: Node, frame: Frame) -> Partial:
    """The partial sums and counts of the reduction ``node`` over one chunk's ``frame``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4)).saliency(0).mean()
    >>> p = partial(e.node, Frame(torch.ones(2, 4), ("sample", "feature")))
    >>> p.frame.data.item(), p.counts.item()
    (8.0, 8.0)
    """
    wide = replace(frame, data=frame.data.double())
    if isinstance(node, GroupReduce):
        sums = ops.group_reduce(wide, node.key, "sum")
        per_sample = {k: c for k, c in frame.coords.items() if c[0] == ("sample",)}
        n = frame.data.shape[frame.axis("sample")]
        ones = frame.data.new_ones(n, dtype=torch.float64)
        ones = Frame(ones, ("sample",), per_sample, columns=frame.columns)
        counts = ops.group_reduce(ones, node.key, "sum").data
        return Partial(_host(sums), counts.cpu(), node.key, frame.data.dtype)
    assert isinstance(node, Reduce)
    names = frame.dims if node.dims is None else node.dims
    sums = ops.reduce(wide, node.dims, "sum")
    count = math.prod(frame.data.shape[frame.axis(d)] for d in names)
    return Partial(_host(sums), torch.tensor(float(count)), None, frame.data.dtype)


def _host(frame: Frame) -> Frame:
    return replace(frame, data=frame.data.cpu(), columns={})


def combine(*parts: Partial) -> Partial:
    """Partials of the same reduction over different samples, added up (groups matched by
    value).

    Examples
    --------
    >>> f = Frame(torch.ones(1, 2, dtype=torch.float64), ("label", "x"),
    ...           {"label": (("label",), np.array([3]))})
    >>> a = Partial(f, torch.tensor([2.0], dtype=torch.float64), "label", torch.float32)
    >>> g = replace(f, coords={"label": (("label",), np.array([1]))})
    >>> c = combine(a, Partial(g, torch.tensor([1.0], dtype=torch.float64), "label", torch.float32), a)
    >>> c.frame.coords["label"][1].tolist(), c.counts.tolist(), c.frame.data[:, 0].tolist()
    ([1, 3], [1.0, 4.0], [1.0, 2.0])
    """
    first = parts[0]
    if first.key is None:
        data = torch.stack([p.frame.data for p in parts]).sum(0)
        counts = torch.stack([p.counts for p in parts]).sum(0)
        return replace(first, frame=replace(first.frame, data=data), counts=counts)
    key = first.key
    axis = first.frame.axis(key)
    groups = np.unique(np.concatenate([p.frame.coords[key][1] for p in parts]))
    shape = list(first.frame.data.shape)
    shape[axis] = len(groups)
    data = torch.zeros(shape, dtype=torch.float64)
    counts = torch.zeros(len(groups), dtype=torch.float64)
    for p in parts:
        where = torch.as_tensor(np.searchsorted(groups, p.frame.coords[key][1]), dtype=torch.long)
        data.index_add_(axis, where, p.frame.data)
        counts.index_add_(0, where, p.counts)
    coords = {**first.frame.coords, key: ((key,), groups)}
    return replace(first, frame=replace(first.frame, data=data, coords=coords), counts=counts)


def finished(node: Node, part: Partial) -> Frame:
    """The result of the reduction ``node`` from its combined partial, in the dtype of what
    was reduced (a mean of no values is NaN, as in torch).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4)).saliency(0).mean()
    >>> p = partial(e.node, Frame(torch.ones(2, 4), ("sample", "feature")))
    >>> out = finished(e.node, combine(p, p))
    >>> out.data, out.attrs["operations"]
    (tensor(1.), 'mean()')
    """
    data, counts = part.frame.data, part.counts
    if getattr(node, "how", "sum") == "mean":
        if part.key is not None:
            axis = part.frame.axis(part.key)
            counts = counts.reshape([-1] + [1] * (data.ndim - axis - 1))
        data = data / counts
    return stepped(node, replace(part.frame, data=data.to(part.dtype)))


def chunk_outputs(lay: Layout, by_token: dict[str, Node]) -> list[Node]:
    """The nodes whose frames each chunk computes: the per-sample roots, and what each
    reduction over samples reduces.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4)).saliency(0)
    >>> m = e.mean("sample")
    >>> lay = layout([m.node])
    >>> [n.op for n in chunk_outputs(lay, {n.token: n for n in walk([m.node])})]
    ['attribution']
    """
    wanted = [by_token[t] for t in lay.rows]
    wanted += [by_token[t].children[0] for t in lay.crossings]
    return list({n.token: n for n in wanted}.values())


def by_token_of(roots: list[Node]) -> dict[str, Any]:
    """Every node of ``roots``'s graph by token.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4)).saliency(0)
    >>> sorted(n.op for n in by_token_of([e.node]).values())
    ['attribution', 'source']
    """
    return {n.token: n for n in walk(roots)}

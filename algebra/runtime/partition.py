"""The sample axis cut into chunks: chunk sizes, and an expression graph rebuilt over the
samples ``start:stop`` of its sources.

A chunk's graph is the same graph with every :class:`~algebra.ir.views.Source` replaced by
one over the chunk's rows (inputs, labels and ids), and with per-sample arguments sliced
too (a baseline or patch tensor with one row per sample, per-sample targets). The engine
then computes it as it computes any expression: chunks reuse the whole runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import torch

from ..ir.attribution import Attribution
from ..ir.node import Node, Ref, walk
from ..ir.targets import Target
from ..ir.views import Edit, Source, source_of
from ..kernels.checks import as_inputs, as_labels, fingerprint, model_dtype
from .sources import DatasetInputs, LazyInputs, is_lazy


def bounds(n: int, rows: int) -> list[tuple[int, int]]:
    """The chunks ``(start, stop)`` of ``n`` samples, ``rows`` each (the last may be shorter).

    Examples
    --------
    >>> bounds(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    return [(start, min(start + rows, n)) for start in range(0, n, rows)]


def chunk_rows(n: int, per_sample: int, budget: int, parallel: int, multiple: int = 1) -> int:
    """Samples per chunk: as many as ``per_sample`` bytes each fit in ``budget``, at most an
    even share of ``n`` over ``parallel`` workers (so every worker has a chunk), rounded
    down to the ``multiple`` the inputs come in (a Dataset's batch, a dask array's chunk)
    when there is room for one.

    Aligned chunks read whole blocks of the inputs: a chunk that ends inside a block keeps
    the whole block alive until the next chunk reads the rest, and dask may run that one
    much later (chunks of 5461 rows over blocks of 1024 took a worker to 1.3 times the
    budget: docs/scale-out.md, "Memory").

    Examples
    --------
    >>> chunk_rows(1000, per_sample=1024, budget=64 * 1024, parallel=1)
    64
    >>> chunk_rows(100, per_sample=1, budget=10**9, parallel=4), chunk_rows(100, 1, 10**9, 4, 16)
    (25, 16)
    >>> chunk_rows(10**6, per_sample=1, budget=5461, parallel=1, multiple=1024)
    5120
    """
    rows = max(1, budget // max(per_sample, 1))
    rows = min(rows, n, -(-n // max(parallel, 1)))
    return rows // multiple * multiple if rows >= multiple else rows


def rebuilt(
    roots: list[Node], source: Callable[[Source], Source], rows: slice | None = None
) -> dict[str, Node]:
    """Every node of ``roots``'s graph rebuilt over ``source(s)`` for each source ``s``,
    by original token. With ``rows``, per-sample arguments are sliced to those rows.

    Tokens of unchanged nodes are kept; rebuilt nodes are validated again.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4))
    >>> e = q.saliency([0, 1, 2, 0, 1, 2]).abs()
    >>> out = rebuilt([e.node], lambda s: over(s, 2, 4, {s.inputs.token: s.inputs.value[2:4]}),
    ...               slice(2, 4))
    >>> new = out[e.node.token]
    >>> source_of(new).shape, new.children[0].target
    ((2, 4), per-sample[2, 0])
    """
    done: dict[str, Node] = {}

    def node_of(node: Node) -> Node:
        if node.token not in done:
            done[node.token] = _rebuild(node, node_of, source, rows)
        return done[node.token]

    for node in walk(roots):  # children first, so each rebuild finds its children done
        node_of(node)
    return done


def _rebuild(
    node: Node, node_of: Callable[[Node], Node], source: Callable[[Source], Source], rows: Any
) -> Node:
    if isinstance(node, Source):
        return source(node)
    changes = {}
    for f in fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        new = node_of(value) if isinstance(value, Node) else value
        if new is not value:
            changes[f.name] = new
    if isinstance(node, Attribution):
        n = source_of(node.view).n
        params = tuple((k, _param(v, node_of, n, rows)) for k, v in node.params)
        if any(a[1] is not b[1] for a, b in zip(params, node.params, strict=True)):
            changes["params"] = params
        if rows is not None and node.target.kind == "per_sample":
            changes["target"] = Target("per_sample", tuple(node.target.value)[rows])  # type: ignore[arg-type]
    if isinstance(node, Edit) and node.kind == "patch" and isinstance(node.value, Ref):
        value = _per_sample(node.value, source_of(node.view).n, rows)
        if value is not node.value:
            changes["value"] = value
    return replace(node, **changes) if changes else node  # type: ignore[type-var]


def _param(value: Any, node_of: Callable[[Node], Node], n: int, rows: Any) -> Any:
    if isinstance(value, Node):  # a baseline query's inputs
        return node_of(value)
    if isinstance(value, Ref):
        return _per_sample(value, n, rows)
    return value


def _per_sample(ref: Ref, n: int, rows: slice | None) -> Ref:
    # By broadcasting, a tensor of the inputs' rank whose first dim is n (> 1) has one row
    # per sample; smaller tensors are shared by all samples.
    tensor = ref.value
    if rows is None or not isinstance(tensor, torch.Tensor) or n == 1 or tensor.ndim < 2:
        return ref
    if tensor.shape[0] != n:
        return ref
    sliced = tensor[rows]
    return Ref(sliced, fingerprint(sliced))


def over(source: Source, start: int, stop: int, data: dict[str, Any]) -> Source:
    """``source`` over its samples ``start:stop``, whose raw inputs and labels are in
    ``data`` by token; the inputs are converted to the model's dtype and checked (finite),
    the labels checked against the model's classes.

    Examples
    --------
    >>> import numpy as np, torch, algebra as ia
    >>> s = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4), ids=list("abcdef")).node
    >>> part = over(s, 2, 4, {s.inputs.token: np.zeros((2, 4))})
    >>> part.shape, part.ids, part.inputs.value.dtype
    ((2, 4), ('c', 'd'), torch.float32)
    """
    n = stop - start
    module = source.model.torch_module
    x = as_inputs(data[source.inputs.token], model_dtype(module))
    if x.shape[0] != n:
        raise ValueError(f"inputs: expected {n} samples in rows {start}:{stop}; read {x.shape[0]}")
    labels = None
    if source.labels is not None:
        y = as_labels(data[source.labels.token], n, source.model.num_classes)
        labels = Ref(y, f"rows:{start}:{stop}:{source.labels.token}")
    whole = start == 0 and n == source.n
    if source.ids is not None:
        ids: tuple[Any, ...] | None = source.ids[start:stop]
    else:
        ids = None if whole else tuple(range(start, stop))
    inputs = Ref(x, f"rows:{start}:{stop}:{source.inputs.token}")
    return Source(source.model, inputs, labels, (n, *source.shape[1:]), source.dims, ids)


def sources_of(roots: list[Node]) -> list[Source]:
    """Every source the graph of ``roots`` reads, baselines' included, each once.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Linear(4, 3).eval())
    >>> a, b = m.on(torch.rand(2, 4)), m.on(torch.rand(2, 4))
    >>> len(sources_of([a.integrated_gradients(0, baseline=b, steps=4).node]))
    2
    """
    found: dict[str, Source] = {}
    for node in rebuilt(roots, lambda s: found.setdefault(s.token, s)).values():
        if isinstance(node, Source):
            found.setdefault(node.token, node)
    return list(found.values())


def read(sources: list[Source], start: int, stop: int) -> dict[str, Any]:
    """The raw inputs and labels of the samples ``start:stop`` of every source, by token
    (lazy inputs are read, tensors sliced).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> s = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4), labels=[0] * 6).node
    >>> sorted(v.shape[0] for v in read([s], 1, 3).values())
    [2, 2]
    """
    data: dict[str, Any] = {}
    for source in sources:
        refs = [source.inputs] + ([source.labels] if source.labels is not None else [])
        lazy = [r.value for r in refs if is_lazy(r.value)]
        for inputs in dict.fromkeys(lazy):  # each lazy source read once
            x, y = inputs.read(start, stop)
            data[inputs.token] = x
            if inputs.labels_token is not None:
                data[inputs.labels_token] = y
        for ref in refs:
            if not is_lazy(ref.value):
                data[ref.token] = ref.value[start:stop]
    return data


def has_lazy(sources: list[Source]) -> bool:
    """Whether any of ``sources`` reads its inputs chunk by chunk.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> has_lazy([ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4)).node])
    False
    """
    return any(is_lazy(s.inputs.value) for s in sources)


def in_memory(roots: list[Node]) -> dict[str, Node]:
    """The graph with every lazy source read whole into tensors (the in-process executor's
    way with a Dataset or a dask array), by original token.

    Examples
    --------
    >>> import dask.array as da, torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(da.ones((5, 4), chunks=2))
    >>> e = q.saliency(0)
    >>> type(source_of(in_memory([e.node])[e.node.token]).inputs.value).__name__
    'Tensor'
    """
    sources = [s for s in sources_of(roots) if is_lazy(s.inputs.value)]
    if not sources:
        return {n.token: n for n in roots}
    data = read(sources, 0, sources[0].n)
    return rebuilt(roots, lambda s: over(s, 0, s.n, data) if is_lazy(s.inputs.value) else s)


def stand_ins(roots: list[Node]) -> dict[str, Node]:
    """The graph with every lazy source's inputs replaced by a stand-in of their shape and
    dtype that takes no memory (planning needs shapes only), by original token.

    Examples
    --------
    >>> import dask.array as da, torch, algebra as ia
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(da.ones((5, 4), chunks=2)).saliency(0)
    >>> tuple(source_of(stand_ins([e.node])[e.node.token]).inputs.value.shape)
    (5, 4)
    """

    def stand_in(source: Source) -> Source:
        lazy = source.inputs.value
        if not isinstance(lazy, LazyInputs):
            return source
        x = torch.zeros((), dtype=lazy.dtype).expand(lazy.shape)
        return replace(source, inputs=Ref(x, source.inputs.token))

    return rebuilt(roots, stand_in)


def stripped(roots: list[Node]) -> list[Node]:
    """``roots`` with their sources' data left out (tokens kept): inputs travel to workers
    chunk by chunk, not with the graph. Datasets stay, as chunks read them where they run.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4)).saliency(0)
    >>> [new] = stripped([e.node])
    >>> new == e.node, source_of(new).inputs.value is None
    (True, True)
    """

    def strip(source: Source) -> Source:
        def empty(ref: Ref | None) -> Ref | None:
            keep = ref is None or isinstance(ref.value, DatasetInputs)
            return ref if keep else Ref(None, ref.token)  # type: ignore[union-attr]

        return replace(source, inputs=empty(source.inputs), labels=empty(source.labels))

    new = rebuilt(roots, strip)
    return [new[r.token] for r in roots]

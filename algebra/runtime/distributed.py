"""The dask executor: ``ia.compute(..., client=...)`` or ``ia.compute(..., scheduler=...)``.

The sample axis is cut into chunks sized by ``ia.options.memory_budget``; each chunk is one
dask task that runs the whole fused plan on its samples through the engine
(:func:`algebra.runtime.chunks.run_chunk`). The models travel once per worker (scattered
with ``broadcast=True``); each chunk's inputs travel with its task (or are read where it
runs). Per-sample results come back as ``DataArray`` objects backed by dask arrays,
concatenated lazily along ``sample``, their per-sample coordinates (``pred``, ``label``,
``class``, ...) dask arrays too; reductions over samples are trees of partial sums.
Scheduling, retries and data movement are dask's.
"""

from __future__ import annotations

import os
import uuid
import weakref
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..config import OptimizerOptions, options
from ..errors import did_you_mean
from ..ir.attribution import Attribution
from ..ir.node import Node
from ..ir.views import Source, source_of
from ..kernels.guard import device_of
from ..kernels.memory import default_budget
from ..kernels.plan import ExecConfig
from ..results.frames import attributes
from .chunks import Shipment, compute_chunk, deliver, expect, finish, in_chunk, run_chunk
from .compute import prepare
from .partition import bounds, chunk_rows, read, sources_of, stripped
from .reductions import Layout, by_token_of, combine, layout
from .sources import ArrayInputs, DatasetInputs

SCHEDULERS = ("threads", "processes", "synchronous")
_FAN_IN = 8  # partial results combined eight at a time, as dask's own tree reductions
# Copies of a chunk's inputs and results alive at once in a worker, measured: the blocks
# dask reads and the one it hands over, its tensor, the results on the device and on the
# host, the buffers of the store writing them, and the next chunk's inputs already read
# (docs/scale-out.md, "Memory": at 4 a worker peaked at 0.92 of the budget).
_COPIES = 8


def check_executor(client: Any, scheduler: Any, progress: Any) -> None:
    """Validate ``client``, ``scheduler`` and ``progress`` of ``ia.compute``.

    Examples
    --------
    >>> check_executor(None, "thread", False)
    Traceback (most recent call last):
    ValueError: scheduler: expected one of 'threads', 'processes', 'synchronous'; got 'thread'. Did you mean 'threads'?
    >>> check_executor(None, None, True)
    Traceback (most recent call last):
    ValueError: progress: dask's progress bar needs client= or scheduler=
    """
    if client is not None and scheduler is not None:
        raise ValueError("client, scheduler: pass one of them (a client runs its own scheduler)")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(
            f"scheduler: expected one of {', '.join(map(repr, SCHEDULERS))}; got {scheduler!r}."
            + (did_you_mean(scheduler, SCHEDULERS) if isinstance(scheduler, str) else "")
        )
    if client is not None:
        from distributed import Client

        if not isinstance(client, Client):
            raise TypeError(
                f"client: expected a dask.distributed Client; got {type(client).__name__}"
            )
    if not isinstance(progress, bool):
        raise TypeError(f"progress: expected True or False; got {progress!r}")
    if progress and client is None and scheduler is None:
        raise ValueError("progress: dask's progress bar needs client= or scheduler=")


def on_dask(
    roots: list[Node], rules: OptimizerOptions, client: Any, scheduler: str | None, progress: bool
) -> dict[str, xr.DataArray]:
    """Compute ``roots`` chunk by chunk on dask; their results by token.

    Per-sample results and plain reductions are lazy (dask-backed); a ``groupby``'s groups
    are data, so it is computed here (on dask) and comes back as one dask chunk.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4)).saliency(0)
    >>> [r] = on_dask([e.node], flags(), None, "synchronous", False).values()
    >>> type(r.data).__name__, r.shape
    ('Array', (6, 4))
    """
    import dask

    # Refuse tensors changed in place since the expressions were built.
    leaves = prepare(roots).graph.leaves
    lay = layout(roots)
    sources = sources_of(roots)
    n = _samples(sources)
    budget = options.memory_budget or default_budget(device_of(sources[0].model.torch_module))
    passes = None if options.memory_budget is None else budget // 2
    config = ExecConfig(rules.chunk, passes, options.precision, options.compile)
    width, ids = _width(sources), sources[0].ids
    local = Shipment(roots, lay, rules, config, width, ids)
    try:  # the first sample, here: the results' structure, and user errors found early
        probe = compute_chunk(local, 0, 1, read(sources, 0, 1))
    except Exception as error:
        raise in_chunk(error, 0, 1, ids) from error
    shipment = Shipment(stripped(roots), lay, rules, config, width, ids)
    shipment.expected = {t: expect(probe.values[t]) for t in lay.rows}
    per_sample = _COPIES * (probe.nbytes + sum(_row_bytes(s) for s in sources))
    parallel = _parallel(client, scheduler)
    spans = bounds(n, chunk_rows(n, per_sample, budget // 2, parallel, _multiple(sources)))
    uid = uuid.uuid4().hex[:12]
    if client is not None:
        handle: Any = deliver(client, shipment, f"ialgebra-{uid}")
    else:
        handle = dask.delayed(shipment, name=f"ialgebra-shipment-{uid}", traverse=False)
    columns = _columns(sources, spans, copy=client is not None or scheduler == "processes")

    def chunks(wanted: tuple[str, ...] | None, tag: str) -> list[Any]:
        return [
            dask.delayed(run_chunk, pure=False)(
                handle, start, stop, columns[i], wanted, dask_key_name=f"ialgebra-{tag}-{uid}-{i}"
            )
            for i, (start, stop) in enumerate(spans)
        ]

    by_token = by_token_of(roots)
    outs = chunks(None, "chunk")
    templates = {t: _whole(probe.values[t], leaves[t]) for t in lay.rows}
    results = {
        t: _concatenated(outs, spans, t, templates[t], _sample_ids(by_token[t])) for t in lay.rows
    }
    eager_needs = tuple(c for t in lay.eager for c in lay.finished[t])
    eager_outs = chunks(tuple(dict.fromkeys(eager_needs)), "eager") if lay.eager else []
    finals = _finals(lay, handle, outs, eager_outs, uid)
    for token in set(lay.finished) - lay.eager:
        template = finish(local, token, {c: probe.values[c] for c in lay.finished[token]})
        results[token] = _lazy(finals[token], _whole(template, leaves[token]))
    eager = {t: finals[t] for t in lay.eager}
    get = client if client is not None else scheduler
    if progress:
        results, eager = _with_progress(results, eager, client, scheduler)
        for result in results.values():  # persisted chunks lost with a worker are
            weakref.finalize(result, _kept, handle)  # recomputed: the models stay there
    if eager:
        (computed,) = dask.compute(eager, scheduler=get)
        results.update({t: _whole(a, leaves[t]).chunk() for t, a in computed.items()})
    return results


def _whole(result: xr.DataArray, leaves: tuple[Attribution, ...]) -> xr.DataArray:
    """``result`` of some chunk(s), with the attributes of the whole computation: a
    per-sample target or baseline is described by all its rows, not the chunk's."""
    whole = attributes(leaves[0])  # the left-most attribution gives a result its attrs
    return result.assign_attrs({k: whole.get(k, v) for k, v in result.attrs.items()})


def _finals(lay: Layout, handle: Any, outs: list[Any], eager_outs: list[Any], uid: str) -> dict:
    import dask

    trees: dict[tuple[str, bool], Any] = {}

    def tree(crossing: str, eager: bool) -> Any:
        if (crossing, eager) not in trees:
            parts = [dask.delayed(_pick)(o, crossing) for o in (eager_outs if eager else outs)]
            while len(parts) > 1:
                parts = [
                    dask.delayed(combine)(*parts[i : i + _FAN_IN])
                    for i in range(0, len(parts), _FAN_IN)
                ]
            trees[(crossing, eager)] = parts[0]
        return trees[(crossing, eager)]

    return {
        token: dask.delayed(finish, pure=False)(
            handle,
            token,
            {c: tree(c, token in lay.eager) for c in needed},
            dask_key_name=f"ialgebra-finish-{uid}-{token}",
        )
        for token, needed in lay.finished.items()
    }


def _with_progress(
    results: dict[str, xr.DataArray], eager: dict[str, Any], client: Any, scheduler: str | None
) -> tuple[dict[str, xr.DataArray], dict[str, Any]]:
    # Everything runs now, under one bar; results stay dask-backed (on the workers with a
    # client, in this process's memory with a local scheduler).
    import dask

    keys = list(results) + list(eager)
    collections = list(results.values()) + list(eager.values())
    if client is not None:
        from distributed import progress

        done = client.persist(collections)
        progress(done, notebook=False)
    else:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            done = dask.persist(*collections, scheduler=scheduler)
    out = dict(zip(keys, done, strict=True))
    return {t: out[t] for t in results}, {t: out[t] for t in eager}


def _kept(handle: Any) -> None:
    """Nothing: a finalizer holding ``handle`` as long as a persisted result lives."""


def _pick(out: dict[str, Any], token: str) -> Any:
    return out[token]


def _field(out: dict[str, Any], token: str, name: str | None) -> np.ndarray:
    array = out[token]
    return array.values if name is None else array[name].values


def _values(array: xr.DataArray) -> np.ndarray:
    return array.values


def _concatenated(
    outs: list[Any], spans: list[tuple[int, int]], token: str, template: xr.DataArray, ids: Any
) -> xr.DataArray:
    """A per-sample root: its chunks' data and per-sample coordinates, concatenated along
    ``sample`` as dask arrays; the coordinates along other dims are the first sample's."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    rows = tuple(stop - start for start, stop in spans)

    def column(name: str | None) -> Any:
        # One graph layer per array, a task per chunk taking its field from the chunk's
        # results (lighter than an array per chunk, concatenated).
        like = template if name is None else template[name]
        axis = like.dims.index("sample")
        key = f"ialgebra-{token}-{name or 'data'}-{outs[0].key}"
        zeros = [0] * like.ndim
        layer = {
            (key, *zeros[:axis], i, *zeros[axis + 1 :]): (_field, out.key, token, name)
            for i, out in enumerate(outs)
        }
        chunks = tuple(rows if d == axis else (n,) for d, n in enumerate(like.shape))
        graph = HighLevelGraph.from_collections(key, layer, dependencies=outs)
        return da.Array(graph, key, chunks, dtype=like.dtype)

    coords: dict[str, Any] = {}
    for name, coord in template.coords.items():
        if name == "sample":
            coords[name] = (("sample",), ids)
        elif "sample" in coord.dims:
            coords[name] = (coord.dims, column(str(name)))
        else:
            coords[name] = (coord.dims, coord.values)
    return xr.DataArray(
        column(None), dims=template.dims, coords=coords, name=template.name, attrs=template.attrs
    )


def _lazy(final: Any, template: xr.DataArray) -> xr.DataArray:
    import dask
    import dask.array as da

    data = da.from_delayed(dask.delayed(_values)(final), template.shape, dtype=template.dtype)
    return template.copy(data=data)


def _columns(
    sources: list[Source], spans: list[tuple[int, int]], copy: bool
) -> list[dict[str, Any]]:
    # What travels with each chunk's task: dask blocks, or slices of in-memory tensors
    # (copied when pickled: a view would carry its whole storage along).
    columns: list[dict[str, Any]] = [{} for _ in spans]
    done: set[str] = set()
    for source in sources:
        for ref in (source.inputs, source.labels):
            if ref is None or ref.token in done:
                continue
            done.add(ref.token)
            value = ref.value
            if isinstance(value, ArrayInputs):
                for column, (x, y) in zip(columns, value.blocks(spans), strict=True):
                    column[value.token] = x
                    if value.labels_token is not None:
                        column[value.labels_token] = y
                done.update({value.token, value.labels_token or ""})
            elif isinstance(value, torch.Tensor):
                for column, (start, stop) in zip(columns, spans, strict=True):
                    part = value[start:stop]
                    column[ref.token] = part.clone() if copy else part
    return columns


def _samples(sources: list[Source]) -> int:
    sizes = sorted({s.n for s in sources})
    if len(sizes) > 1:
        raise ValueError(
            f"inputs: on dask, the expressions of one computation read the same samples; "
            f"these read {sizes} samples: compute them in separate calls"
        )
    return sizes[0]


def _sample_ids(root: Node) -> Any:
    # Positions as a pandas RangeIndex: the driver holds no array of them (xarray would
    # copy one several times over, and to_zarr again: 40 bytes a sample).
    source = source_of(root)
    return np.asarray(source.ids) if source.ids is not None else pd.RangeIndex(source.n)


def _width(sources: list[Source]) -> int:
    texts = [str(v) for s in sources for v in (s.ids or ())]
    models = [s.model for s in sources]
    models += [p for m in models for p in (m.parts or ())]
    texts += [c for m in models for c in (m.classes or ())]
    return max([1, *(len(t) for t in texts)])


def _row_bytes(source: Source) -> int:
    value = source.inputs.value
    dtype = value.dtype if isinstance(value, (torch.Tensor, ArrayInputs, DatasetInputs)) else None
    size = dtype.itemsize if isinstance(dtype, torch.dtype) else 8
    return int(np.prod(source.shape[1:])) * size


def _multiple(sources: list[Source]) -> int:
    """The rows the inputs come in: a Dataset's batch size, or the sample-axis chunk of a
    dask array chunked evenly (the last chunk may be shorter); the largest of them."""
    sizes = [1]
    for source in sources:
        value = source.inputs.value
        if isinstance(value, DatasetInputs) and value.batch_size:
            sizes.append(value.batch_size)
        elif isinstance(value, ArrayInputs):
            rows = value.array.chunks[0]
            if len(set(rows[:-1])) <= 1 and rows[-1] <= rows[0]:
                sizes.append(rows[0])
    return max(sizes)


def _parallel(client: Any, scheduler: str | None) -> int:
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return 1 if scheduler == "synchronous" else os.cpu_count() or 1

"""One chunk of samples, computed by the engine wherever dask runs it.

A chunk task reads its samples, rebuilds the expression graph over them
(:func:`~algebra.runtime.partition.rebuilt`) and runs the same engine as ``ia.compute``
(:func:`~algebra.runtime.compute.evaluated`). It returns, by root token, a ``DataArray``
for each per-sample root and a :class:`~algebra.runtime.reductions.Partial` for each
reduction over samples. What every task needs (the graph with its models, the rules) is a
:class:`Shipment`, sent to each worker once.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..config import OptimizerOptions
from ..ir.format import result_name
from ..ir.node import Node
from ..kernels.frame import Frame
from ..kernels.plan import ExecConfig
from ..results.arrays import to_xarray
from .compute import evaluated
from .evaluate import evaluate
from .graph import read_graph
from .partition import over, rebuilt, sources_of
from .reductions import Layout, by_token_of, chunk_outputs, finished, partial
from .sources import DatasetInputs

# The engine runs one chunk at a time per process: hooks, eval modes and frozen parameters
# are set on the (shared) module for the length of a pass. Reading and writing overlap.
_ENGINE = threading.RLock()

#: Shipments unpacked in this process: one per transfer of the models to it.
received = 0


@dataclass(frozen=True)
class Expected:
    """The structure every chunk of a per-sample root must have (that of the first sample):
    dims, dtype, the sizes of the other dims and the coordinates along them."""

    dims: tuple[str, ...]
    dtype: np.dtype
    sizes: dict[str, int]
    fixed: dict[str, np.ndarray]


def expect(template: xr.DataArray) -> Expected:
    """The structure of ``template`` that every chunk must share.

    Examples
    --------
    >>> t = xr.DataArray(np.zeros((1, 2)), dims=("sample", "target"), coords={"target": [4, 5]})
    >>> e = expect(t)
    >>> e.sizes, e.fixed["target"].tolist()
    ({'target': 2}, [4, 5])
    """
    sizes = {d: s for d, s in template.sizes.items() if d != "sample"}
    fixed = {k: c.values for k, c in template.coords.items() if "sample" not in c.dims}
    return Expected(template.dims, template.dtype, sizes, fixed)


def piece(frame: Frame, name: str, width: int, expected: Expected | None) -> xr.DataArray:
    """A chunk's result for one per-sample root, checked against ``expected``. Text
    coordinates along ``sample`` become fixed-width strings (``<U{width}``), so dask knows
    their type without computing them.

    Examples
    --------
    >>> f = Frame(torch.ones(2, 3), ("sample", "x"),
    ...           {"name": (("sample",), np.array(["a", "bc"], dtype=object))})
    >>> piece(f, "saliency", 4, None)["name"].dtype
    dtype('<U4')
    """
    array = to_xarray(frame, name)
    text = {
        k: (c.dims, c.values.astype(f"<U{width}"))
        for k, c in array.coords.items()
        if k != "sample" and "sample" in c.dims and c.dtype == object
    }
    array = array.assign_coords(text) if text else array
    if expected is not None:
        _check(array, expected)
    return array


def _check(array: xr.DataArray, expected: Expected) -> None:
    sizes = {d: s for d, s in array.sizes.items() if d != "sample"}
    if array.dims != expected.dims or sizes != expected.sizes or array.dtype != expected.dtype:
        raise ValueError(
            f"{array.name}: this chunk's result has dims {dict(array.sizes)} ({array.dtype}); "
            f"the first sample's had {expected.sizes} besides sample ({expected.dtype})"
        )
    for key, values in expected.fixed.items():
        if key not in array.coords or not np.array_equal(array[key].values, values):
            raise ValueError(
                f"{key}: the coordinate differs between chunks (the first sample's is "
                f"{values.tolist()}); results of different chunks cannot be concatenated"
            )


class Shipment:
    """What every chunk task needs, sent to each worker once: the expression graph (models
    and small tensors included; inputs travel with their chunks, except a Dataset's, which
    chunks read where they run), the optimizer rules, the executor settings, the layout,
    the expected structure of each per-sample root, the width of text coordinates and the
    sample ids (for error messages).

    Pickled with cloudpickle (models and functions defined in a notebook or a script
    travel by value); unpacking moves the models to the worker's GPU when it has one.
    """

    def __init__(
        self,
        roots: list[Node],
        layout: Layout,
        rules: OptimizerOptions,
        config: ExecConfig,
        width: int,
        ids: tuple[Any, ...] | None,
    ):
        self.roots = roots
        self.layout = layout
        self.rules = rules
        self.config = config
        self.width = width
        self.ids = ids
        self.expected: dict[str, Expected] = {}
        read_here = [s.inputs.value for s in sources_of(roots)]
        self.datasets = list({id(v): v for v in read_here if isinstance(v, DatasetInputs)}.values())

    def __repr__(self) -> str:
        return f"Shipment({len(self.roots)} roots, {len(self.datasets)} datasets)"

    def __reduce__(self) -> tuple[Any, ...]:
        import cloudpickle  # dask's own serializer, needed only when a shipment travels

        return (_unpacked, (cloudpickle.dumps(self.__dict__),))


def _unpacked(blob: bytes) -> Shipment:
    global received
    shipment = Shipment.__new__(Shipment)
    shipment.__dict__.update(pickle.loads(blob))
    received += 1
    if torch.cuda.is_available():  # a worker with a GPU uses it (this copy is the worker's)
        for module in read_graph(shipment.roots).module_of.values():
            module.to("cuda")
    return shipment


class Delivered:
    """A shipment registered on every worker of a cluster as the worker plugin ``name``:
    what chunk tasks carry instead of the shipment itself.

    A worker that joins later (one restarted after a crash) gets the plugin when it
    registers, so the models reach each worker process once, and again only if it dies.
    Dask's scattered data would not do: its memory manager drops replicas that no task is
    waiting for, and a later task fetches them again.
    """

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Delivered({self.name!r})"

    def get(self) -> Shipment:
        """The shipment, on the worker running the task.

        Examples
        --------
        >>> Delivered("ialgebra-0").get()
        Traceback (most recent call last):
        RuntimeError: client: these results were made for a dask cluster; compute them there, with result.compute(scheduler=client), or with that client as dask's default
        """
        from distributed import get_worker

        try:
            return get_worker().plugins[self.name].shipment
        except (ValueError, KeyError):  # not on a worker, or not on that cluster's
            raise RuntimeError(
                "client: these results were made for a dask cluster; compute them there, "
                "with result.compute(scheduler=client), or with that client as dask's default"
            ) from None


def deliver(client: Any, shipment: Shipment, name: str) -> Delivered:
    """Send ``shipment`` to every worker of ``client``'s cluster once, as a worker plugin
    that is unregistered when the returned handle (held by the results' task graphs) is
    garbage collected.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from distributed import Client
    >>> from algebra.optimizer import flags
    >>> from algebra.runtime.reductions import layout
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4)).saliency(0)
    >>> ship = Shipment([e.node], layout([e.node]), flags(), ExecConfig(), 1, None)
    >>> with Client(processes=False, n_workers=1, dashboard_address=None) as client:
    ...     handle = deliver(client, ship, "ialgebra-example")
    ...     client.submit(lambda h: len(h.get().roots), handle).result()
    1
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    plugin = WorkerPlugin()
    plugin.shipment = shipment  # type: ignore[attr-defined]
    client.register_plugin(plugin, name=name)
    handle = Delivered(name)
    weakref.finalize(handle, _forget, client, name).atexit = False
    return handle


def _forget(client: Any, name: str) -> None:
    # Finalizers run wherever garbage is collected, the client's event loop included:
    # the plugin is removed from that loop, never by blocking on it.
    async def unregister() -> None:
        with contextlib.suppress(Exception):  # the cluster or client is gone: so is the plugin
            await client._unregister_worker_plugin(name=name)

    with contextlib.suppress(Exception):
        client.loop.add_callback(unregister)


def shipment_of(handle: Shipment | Delivered) -> Shipment:
    """The shipment a task was given, or that its worker holds.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> from algebra.runtime.reductions import layout
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4)).saliency(0)
    >>> ship = Shipment([e.node], layout([e.node]), flags(), ExecConfig(), 1, None)
    >>> shipment_of(ship) is ship
    True
    """
    return handle.get() if isinstance(handle, Delivered) else handle


@dataclass(frozen=True)
class ChunkOut:
    """A chunk's results by token, and the bytes of the frames it computed."""

    values: dict[str, Any]
    nbytes: int


def compute_chunk(
    shipment: Shipment,
    start: int,
    stop: int,
    data: dict[str, Any],
    wanted: tuple[str, ...] | None = None,
) -> ChunkOut:
    """Compute the samples ``start:stop`` (raw inputs and labels in ``data`` by token) of
    the shipment's roots, or of the ``wanted`` per-sample roots and reductions.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> from algebra.runtime.reductions import layout
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4))
    >>> e, m = q.saliency(0), q.saliency(0).mean("sample")
    >>> ship = Shipment([e.node, m.node], layout([e.node, m.node]), flags(), ExecConfig(), 1, None)
    >>> out = compute_chunk(ship, 2, 4, {q.node.inputs.token: q.node.inputs.value[2:4]})
    >>> out.values[e.node.token].sample.values.tolist(), out.values[m.node.token].counts.item()
    ([2, 3], 2.0)
    """
    lay = shipment.layout
    by_token = by_token_of(shipment.roots)
    new = rebuilt(shipment.roots, lambda s: over(s, start, stop, data), slice(start, stop))
    rows = [t for t in lay.rows if wanted is None or t in wanted]
    crossings = [t for t in lay.crossings if wanted is None or t in wanted]
    outputs = chunk_outputs(Layout(tuple(rows), tuple(crossings), {}, frozenset()), by_token)
    nodes = [new[n.token] for n in outputs]
    with _ENGINE:
        frames = evaluated(read_graph(nodes), nodes, shipment.rules, shipment.config)
    values: dict[str, Any] = {}
    for token in rows:
        frame = frames[new[token].token]
        name = result_name(by_token[token])
        values[token] = piece(frame, name, shipment.width, shipment.expected.get(token))
    for token in crossings:
        node = by_token[token]
        values[token] = partial(node, frames[new[node.children[0].token].token])
    nbytes = sum(f.data.numel() * f.data.element_size() for f in frames.values())
    return ChunkOut(values, nbytes)


def run_chunk(
    handle: Shipment | Delivered,
    start: int,
    stop: int,
    columns: dict[str, Any],
    wanted: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A dask task: the results of the samples ``start:stop``. ``columns`` holds the raw
    inputs and labels that came with the task; Datasets are read here. A failure names the
    chunk's samples.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> from algebra.runtime.reductions import layout
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4), ids=list("abcdef"))
    >>> e = q.saliency(0)
    >>> ship = Shipment([e.node], layout([e.node]), flags(), ExecConfig(), 1, q.node.ids)
    >>> run_chunk(ship, 2, 4, {q.node.inputs.token: torch.full((2, 4), float("nan"))})
    Traceback (most recent call last):
    ValueError: samples 2:4 (ids 'c', 'd'): inputs: 8 value(s) are NaN or infinite; inputs must be finite
    """
    shipment = shipment_of(handle)
    try:
        data = dict(columns)
        for inputs in shipment.datasets:
            x, y = inputs.read(start, stop)
            data[inputs.token] = x
            if inputs.labels_token is not None:
                data[inputs.labels_token] = y
        return compute_chunk(shipment, start, stop, data, wanted).values
    except Exception as error:
        raise in_chunk(error, start, stop, shipment.ids) from error


def in_chunk(error: Exception, start: int, stop: int, ids: tuple[Any, ...] | None) -> Exception:
    """``error`` again, its message prefixed with the chunk's rows and sample ids.

    Examples
    --------
    >>> in_chunk(ValueError("bad"), 10, 20, None)
    ValueError('samples 10:20 (ids 10, 11, 12, ..., 19): bad')
    """
    shown = list(ids[start:stop]) if ids is not None else list(range(start, stop))
    listed = shown if len(shown) <= 6 else [*shown[:3], ..., shown[-1]]
    text = ", ".join("..." if v is ... else repr(v) for v in listed)
    message = f"samples {start}:{stop} (ids {text}): {error.args[0] if error.args else error}"
    try:
        return type(error)(message)
    except Exception:  # an exception type that takes other arguments
        return RuntimeError(message)


def finish(handle: Shipment | Delivered, token: str, parts: dict[str, Any]) -> xr.DataArray:
    """A dask task: the root ``token`` from the combined partials of its reductions.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> from algebra.runtime.reductions import layout
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4))
    >>> m = q.saliency(0).mean("sample").abs()
    >>> ship = Shipment([m.node], layout([m.node]), flags(), ExecConfig(), 1, None)
    >>> out = compute_chunk(ship, 0, 6, {q.node.inputs.token: q.node.inputs.value})
    >>> finish(ship, m.node.token, out.values).dims
    ('feature',)
    """
    by_token = by_token_of(shipment_of(handle).roots)
    cache = {t: finished(by_token[t], part) for t, part in parts.items()}
    root = by_token[token]
    return to_xarray(evaluate(root, {}, cache), result_name(root))

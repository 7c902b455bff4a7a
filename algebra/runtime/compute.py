"""The engine: computes expression nodes (never ``Expr`` objects) into labelled results.

A computation walks its graph once (:func:`~algebra.runtime.graph.read_graph`), checks
that the tensors it captured are unchanged, reuses what the memo holds, plans the
remaining attributions through the optimizer, runs the frozen jobs on the kernels, then
(phase two) the metrics of the maps just computed, evaluates derived nodes over device
frames, and crosses to xarray at the very end.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

from ..config import OptimizerOptions
from ..ir.format import result_name
from ..ir.node import Node
from ..kernels.checks import check_unchanged, state_token
from ..kernels.frame import Frame
from ..kernels.plan import ExecConfig
from ..results.arrays import to_xarray
from .evaluate import evaluate
from .graph import Graph, read_graph
from .jobs import attribution_frames
from .memo import Memo, memo_key
from .metrics import metric_frames


@dataclass(frozen=True)
class Computation:
    """One computation's graph, its models' state tokens, and the memo keys of its roots."""

    graph: Graph
    states: dict[int, str]
    keys: dict[str, str]


def prepare(roots: list[Node], check: bool = True) -> Computation:
    """Walk ``roots`` once, check their tensors (unless not ``check``: plans only need
    shapes) and take their models' state tokens.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> c = prepare([q.saliency(0).node])
    >>> len(c.states), len(c.keys)
    (1, 1)
    """
    graph = read_graph(roots)
    # Tokens record each tensor's in-place version: data changed since then is not what
    # the expression describes, and computing it would be silently wrong.
    for argument, ref in graph.tensors if check else ():
        check_unchanged(ref.value, ref.token, argument)
    states = {key: state_token(module) for key, module in graph.module_of.items()}
    keys = {r.token: memo_key(r, graph.modules[r.token], states) for r in graph.roots}
    return Computation(graph, states, keys)


def memoized(computation: Computation, memo: Memo) -> dict[str, xr.DataArray]:
    """The roots' results already in ``memo``, by token.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> memoized(prepare([q.saliency(0).node]), Memo())
    {}
    """
    found = {token: memo.get(key) for token, key in computation.keys.items()}
    return {token: array for token, array in found.items() if array is not None}


def run(
    computation: Computation, roots: list[Node], rules: OptimizerOptions
) -> dict[str, xr.DataArray]:
    """Compute ``roots`` (a subset of the computation's) and return their results by token.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> c = prepare([q.saliency(0).abs().node])
    >>> [r.dims for r in run(c, list(c.graph.roots), flags()).values()]
    [('sample', 'feature')]
    """
    frames = evaluated(computation.graph, roots, rules)
    return {root.token: _labelled(frames[root.token], root) for root in roots}


def evaluated(
    graph: Graph, roots: list[Node], rules: OptimizerOptions, config: ExecConfig | None = None
) -> dict[str, Frame | xr.Dataset]:
    """What ``roots`` (nodes of ``graph``) evaluate to, by token, before xarray: device
    frames (a Dataset for counterfactual neurons).

    ``config`` overrides the executor settings the optimizer takes from ``ia.options``
    (the dask executor gives each chunk its share of the memory budget this way).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4)).saliency(0)
    >>> frame = evaluated(read_graph([e.node]), [e.node], flags())[e.node.token]
    >>> frame.dims, type(frame.data).__name__
    (('sample', 'feature'), 'Tensor')
    """
    made: dict[str, object] = {}  # edits made once per computation, whatever reads them
    frames = attribution_frames(graph.leaves_of(roots), rules, made, config)
    cache: dict[str, Frame] = {}
    metrics = graph.metrics_of(roots)
    if metrics:  # phase two: the metrics of the maps just computed
        frames.update(metric_frames(metrics, frames, cache, rules, made))
    return {root.token: evaluate(root, frames, cache) for root in roots}


def _labelled(value: Frame | xr.Dataset, root: Node) -> xr.DataArray | xr.Dataset:
    # Most nodes evaluate to device frames; counterfactual neurons to a labelled Dataset.
    return value if isinstance(value, xr.Dataset) else to_xarray(value, result_name(root))

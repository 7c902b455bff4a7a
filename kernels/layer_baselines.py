"""A baseline given at a layer (an embedding tensor), not at the inputs.

A path or a stream of copies through a layer starts from the layer's activation at the
baseline. Usually the baseline's pass computes it from baseline inputs (token ids of a
padding token); a :class:`LayerBaseline` gives the activation itself, broadcast to every
sample. Its pass only records it, and the scores at it (the convergence delta's
``f(x0)``): the model on the inputs with the layer's output replaced by the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .capture import replaced
from .chunks import sample_chunks
from .ops import Ops, write
from .plan import Group, Job


@dataclass(frozen=True, eq=False)
class LayerBaseline:
    """The activation of ``layer`` at the baseline: ``values`` broadcastable to the
    layer's output ``[N, ...]`` (per sample, or one for all samples).

    Examples
    --------
    >>> LayerBaseline(torch.zeros(4, 8), "emb").layer
    'emb'
    """

    values: torch.Tensor
    layer: str


def run_layer_baseline(
    module: torch.nn.Module, job: Job, group: Group, state: Any, ops: Ops
) -> None:
    """Record a :class:`LayerBaseline` as the baseline's activation of its layer, and the
    scores there, chunk by chunk (the layer's activation at the inputs is already captured).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from algebra.kernels.plan import PathSpec, Points
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    >>> x = torch.ones(4, 3)
    >>> state = SimpleNamespace(x=x, extra={}, baselines={}, acts={"0": net[0](x)})
    >>> ops = Ops(lambda m, t: m(t), None, None, lambda j, g, s, r: 2)
    >>> base = LayerBaseline(torch.zeros(2), "0")
    >>> group = Group(Points("baseline", PathSpec(8, "riemann_left", base, "b")), capture=("0",))
    >>> run_layer_baseline(net, Job(net, x), group, state, ops)
    >>> state.baselines[("b", "0")].shape, torch.allclose(state.extra[("logits", "b")], net[1].bias)
    (torch.Size([4, 2]), True)
    """
    path = group.points.path
    assert path is not None
    base: LayerBaseline = path.baseline
    x, n = state.x, state.x.shape[0]
    layer = base.layer
    acts = state.acts[layer]
    try:
        values = base.values.to(device=acts.device, dtype=acts.dtype).expand_as(acts)
    except RuntimeError:
        raise ValueError(
            f"baseline: shape {list(base.values.shape)} does not broadcast to layer "
            f"{layer!r}'s output {list(acts.shape)}"
        ) from None
    other = [name for name in group.capture if name != layer]
    if other:
        raise ValueError(
            f"baseline: an activation of layer {layer!r} is a baseline there only, not at "
            f"{other[0]!r}"
        )
    write(state.baselines, (path.baseline_key, layer), values, slice(0, n), n)
    for n0, n1 in sample_chunks(n, ops.per_chunk(job, group, state, n)):
        with torch.no_grad(), replaced(module, layer, values[n0:n1].contiguous()):
            out = ops.forward(module, x[n0:n1])
        write(state.extra, ("logits", path.baseline_key), out, slice(n0, n1), n)

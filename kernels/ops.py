"""What the executor lends the gradient family's runners: its forward, backward and sizing.

The runners of the newer point sets (:mod:`~algebra.kernels.runs`) live in their own modules
and are handed one :class:`Ops` by :func:`~algebra.kernels.execute.execute`, so they share
the executor's checks, batched backward (targets packed, chunked under the budget, the
fallback loop) and chunk sizes without importing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .capture import captured
from .chunks import sample_chunks


@dataclass(frozen=True)
class Ops:
    """The executor's own functions.

    ``forward(module, x)`` checks the output is ``[N, classes]``; ``backward(group,
    outputs, wrts, rows, job, state)`` returns each request's gradients ``[T, B, ...]``;
    ``rows(request, state, n0, n1)`` the target rows of samples ``n0:n1``;
    ``per_chunk(job, group, state, rows)`` the rows one chunk may hold.
    """

    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
    backward: Callable[..., dict[str, torch.Tensor]]
    rows: Callable[..., torch.Tensor | None]
    per_chunk: Callable[..., int]


def tiled_rows(
    ops: Ops, group: Any, state: Any, n0: int, n1: int, repeat: int
) -> dict[str, torch.Tensor | None]:
    """Each request's target rows for samples ``n0:n1``, repeated ``repeat`` times
    (step-major rows ``s * n + i``, as the path points).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> ops = Ops(None, None, lambda r, s, a, b: torch.tensor([[7, 8, 9]])[:, a:b], None)
    >>> group = SimpleNamespace(requests=[SimpleNamespace(key="r")])
    >>> tiled_rows(ops, group, None, 1, 3, 2)["r"]
    tensor([[8, 9, 8, 9]])
    """
    out: dict[str, torch.Tensor | None] = {}
    for req in group.requests:
        rows = ops.rows(req, state, n0, n1)
        out[req.key] = None if rows is None else rows.repeat(1, repeat)
    return out


def forward_rows(
    ops: Ops,
    module: torch.nn.Module,
    points: torch.Tensor,
    per_chunk: int,
    layers: tuple[str, ...] = (),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and captured activations of ``points``, evaluated without gradients in chunks.

    Examples
    --------
    >>> ops = Ops(lambda m, x: m(x), None, None, None)
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 2))
    >>> logits, acts = forward_rows(ops, net, torch.ones(5, 2), 2, ("0",))
    >>> tuple(logits.shape), tuple(acts["0"].shape)
    ((5, 2), (5, 3))
    """
    parts: list[torch.Tensor] = []
    kept: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for n0, n1 in sample_chunks(points.shape[0], per_chunk):
        with torch.no_grad(), captured(module, layers) as acts:
            parts.append(ops.forward(module, points[n0:n1]))
        for layer in layers:
            kept[layer].append(acts[layer])
    return torch.cat(parts), {layer: torch.cat(v) for layer, v in kept.items()}


def write(
    store: dict, key: object, value: torch.Tensor, where: slice, n: int, dim: int = 0
) -> None:
    """Write ``value`` at ``where`` along ``dim`` of ``store[key]``, created as zeros with
    ``n`` there on first use (chunks fill a whole-batch tensor in place).

    Examples
    --------
    >>> store = {}
    >>> write(store, "g", torch.ones(2, 3), slice(1, 3), 4)
    >>> store["g"][:, 0].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    if key not in store:
        shape = list(value.shape)
        shape[dim] = n
        store[key] = value.new_zeros(shape)
    index = (slice(None),) * dim + (where,)
    store[key][index] = value


def accumulate(
    sums: dict[str, torch.Tensor], parts: dict[str, torch.Tensor], samples: torch.Tensor, n: int
) -> None:
    """Add each part ``[T, rows, ...]`` into its sample's row (``samples``, one per row) of
    ``sums[name]`` ``[T, n, ...]``, created as zeros on first use.

    Examples
    --------
    >>> sums = {}
    >>> accumulate(sums, {"g": torch.ones(1, 3)}, torch.tensor([0, 0, 2]), 3)
    >>> sums["g"].tolist()
    [[2.0, 0.0, 1.0]]
    """
    for name, value in parts.items():
        if name not in sums:
            sums[name] = value.new_zeros(value.shape[0], n, *value.shape[2:])
        sums[name].index_add_(1, samples, value.detach())


def store_means(state: Any, sums: dict[str, dict[str, torch.Tensor]], count: int) -> None:
    """Each request's sums over ``count`` draws or pairs per sample, as means: the local
    attribution in ``state.grads``, the global one and the delta in ``state.extra``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> state = SimpleNamespace(grads={}, extra={})
    >>> store_means(state, {"r": {"local": torch.ones(1, 2), "global": torch.full((1, 2), 4.0)}}, 2)
    >>> state.grads["r"].tolist(), state.extra[("global", "r")].tolist()
    ([[0.5, 0.5]], [[2.0, 2.0]])
    """
    for key, parts in sums.items():
        state.grads[key] = parts["local"] / count
        state.extra[("global", key)] = parts["global"] / count
        if "delta" in parts:
            state.extra[("delta", key)] = parts["delta"] / count

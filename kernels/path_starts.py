"""The scores at an input path's start, for integrated gradients' delta, without another forward.

A rule whose first point is the start (``riemann_trapezoid``, ``riemann_left``: alpha 0)
already evaluates it: its logits are kept. Otherwise the start points ride along with the
path's first step: one row when the baseline is shared by all samples, else one per sample
(a per-sample baseline, or a window that holds the outside at the input), appended to
the chunk and cut off again after the forward. A path through a layer starts at the
baseline's activation, whose logits the baseline's own pass keeps.
"""

from __future__ import annotations

from typing import Any

import torch

from .paths import alphas_and_weights
from .plan import PathSpec, Points


def start_rows(
    path: PathSpec, starts: torch.Tensor, alphas: list[float], s0: int, n0: int, n1: int
) -> torch.Tensor | None:
    """The start points to append to a chunk of steps from ``s0`` and samples ``n0:n1``.

    Examples
    --------
    >>> path = PathSpec(4, "gausslegendre", 0.0, "0.0")
    >>> start_rows(path, torch.zeros(3, 2), [0.1, 0.9], 0, 0, 3).shape
    torch.Size([1, 2])
    >>> start_rows(path, torch.zeros(3, 2), [0.0, 1.0], 0, 0, 3) is None   # on the path
    True
    """
    if s0 != 0 or alphas[0] == 0.0:
        return None
    if shared_start(path, starts):
        return starts[:1] if n0 == 0 else None
    return starts[n0:n1]


def start_count(points: Points, inputs: torch.Tensor) -> int:
    """Start rows an input path adds to its forward: 0 when its rule evaluates the start
    (alpha 0) or it runs through a layer, 1 for a shared start, else one per sample.

    Examples
    --------
    >>> p = PathSpec(4, "gausslegendre", 0.0, "0.0")
    >>> start_count(Points("path", p), torch.zeros(3, 2)), start_count(Points("path", p, "fc"), torch.zeros(3, 2))
    (1, 0)
    """
    path = points.path
    if points.kind != "path" or points.layer is not None or path is None:
        return 0
    if alphas_and_weights(path.rule, path.steps)[0][0] == 0.0:
        return 0
    return 1 if shared_start(path, inputs) else inputs.shape[0]


def shared_start(path: PathSpec, starts: torch.Tensor) -> bool:
    """Whether every sample starts at the same point (a scalar or one baseline, no window).

    Examples
    --------
    >>> shared_start(PathSpec(4, "gausslegendre", torch.zeros(1, 2), "b"), torch.zeros(3, 2))
    True
    """
    base = path.baseline
    one = not isinstance(base, torch.Tensor) or base.ndim < starts.ndim or base.shape[0] == 1
    return one and path.window is None


def record_starts(
    store: dict,
    key: Any,
    out: torch.Tensor,
    acts: dict[str, torch.Tensor],
    rows: int,
    alphas: list[float],
    span: tuple[int, int, int, int],
    shared: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Keep the start's logits from a chunk's outputs; the chunk's own rows back.

    ``rows`` are the path points' rows (any more were start points); ``span`` is the
    chunk's ``(s0, n0, n1, n)``. The logits go to ``store[key]``: ``[1, C]`` for a
    ``shared`` start appended as one row, else ``[N, C]``.

    Examples
    --------
    >>> store = {}
    >>> out, _ = record_starts(store, "k", torch.arange(8.0).reshape(4, 2), {}, 3, [0.5],
    ...                        (0, 0, 3, 3), shared=True)
    >>> out.shape, store["k"]
    (torch.Size([3, 2]), tensor([[6., 7.]]))
    """
    s0, n0, n1, n = span
    if s0 != 0:
        return out, acts
    if alphas[0] == 0.0:  # the path's first step is the start
        _put(store, key, out[: n1 - n0].detach(), n0, n)
        return out, acts
    extra = out[rows:].detach()
    if not len(extra):
        return out, acts
    if shared:
        store[key] = extra
    else:
        _put(store, key, extra, n0, n)
    return out[:rows], {name: a[:rows] for name, a in acts.items()}


def _put(store: dict, key: Any, value: torch.Tensor, n0: int, n: int) -> None:
    if key not in store:
        store[key] = value.new_zeros(n, *value.shape[1:])
    store[key][n0 : n0 + len(value)] = value

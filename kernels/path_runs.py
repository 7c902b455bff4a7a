"""Integrated gradients' point sets: a path's baseline, and the path itself.

The baseline's pass keeps the activations a layer path starts from (and the scores the
delta reads); the path runs chunk by chunk over steps and samples, each chunk one forward
and the fused backward, its gradients integrated into place.
"""

from __future__ import annotations

from typing import Any

import torch

from .backward import compilable, compiled_backward
from .capture import captured, replaced
from .chunks import path_chunks, sample_chunks
from .ops import Ops, write
from .path_starts import record_starts, shared_start, start_rows
from .paths import alphas_and_weights, integrate, path_points
from .plan import Group, Job, PathSpec
from .unit_targets import backward_by_source, unit_layers
from .windows import path_start


def baseline_input(path_baseline: object, x: torch.Tensor) -> torch.Tensor:
    """The baseline broadcast to ``x``'s shape, as a view (no copy of ``x``'s size).

    Examples
    --------
    >>> b = baseline_input(0.5, torch.ones(2, 3))
    >>> b.shape, b.stride(), b[1, 2].item()
    (torch.Size([2, 3]), (0, 0), 0.5)
    """
    if isinstance(path_baseline, torch.Tensor):
        return path_baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
    return x.new_full((1,) * x.ndim, float(path_baseline)).expand_as(x)  # type: ignore[arg-type]


def run_baseline(module: torch.nn.Module, job: Job, group: Group, state: Any, ops: Ops) -> None:
    """Activations (and scores) at a path's baseline, evaluated once when it is shared.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from algebra.kernels.plan import PathSpec, Points, Request, TargetSpec
    >>> from algebra.kernels.ops import Ops
    >>> net = torch.nn.Linear(3, 2)
    >>> x = torch.ones(4, 3)
    >>> state = SimpleNamespace(x=x, extra={}, baselines={}, grads={}, acts={})
    >>> ops = Ops(lambda m, t: m(t), None, lambda r, s, a, b: None, lambda j, g, s, r: 2)
    >>> group = Group(Points("baseline", PathSpec(8, "riemann_left", 0.0, "zero")))
    >>> run_baseline(net, Job(net, x), group, state, ops)
    >>> torch.allclose(state.extra[("logits", "zero")][0], net.bias)
    True
    """
    path = group.points.path
    assert path is not None
    x, n = state.x, state.x.shape[0]
    base = path.baseline
    # A scalar (or batch-1) baseline is the same point for every sample: evaluate it once.
    shared = not isinstance(base, torch.Tensor) or base.ndim < x.ndim or base.shape[0] == 1
    points = baseline_input(base, x[:1] if shared else x).contiguous()  # models may view()
    for n0, n1 in sample_chunks(len(points), ops.per_chunk(job, group, state, len(points))):
        with torch.no_grad(), captured(module, group.capture) as acts:
            out = ops.forward(module, points[n0:n1])
        # The baseline's scores: integrated gradients' delta (kernels.assemble.path_delta).
        write(state.extra, ("logits", path.baseline_key), out, slice(n0, n1), len(points))
        for layer in group.capture:
            act = acts[layer].expand(n, *acts[layer].shape[1:]) if shared else acts[layer]
            write(
                state.baselines, (path.baseline_key, layer), act, slice(n0, n if shared else n1), n
            )


def run_path(module: torch.nn.Module, job: Job, group: Group, state: Any, ops: Ops) -> None:
    """Gradients integrated along a path, chunked over steps and samples, into
    ``state.grads`` (the executor's :class:`~algebra.kernels.ops.Ops` differentiate).

    Examples
    --------
    >>> from algebra.kernels.execute import execute
    >>> from algebra.kernels.plan import Output, PathSpec, Points, Request, TargetSpec
    >>> net = torch.nn.Linear(3, 2).eval()
    >>> path = Group(Points("path", PathSpec(4, "gausslegendre", 0.0, "zero")),
    ...              (Request("r", TargetSpec("index", 1)),))
    >>> job = Job(net, torch.ones(2, 3), groups=(Group(Points("inputs")), path),
    ...           results=(Output("ig", "r", "integrated"),))
    >>> ig = execute(job).tasks["ig"].values  # run_path integrates the gradient
    >>> torch.allclose(ig[0, 0], net.weight[1].detach())
    True
    """
    points_spec = group.points
    path = points_spec.path
    assert path is not None
    x, n = state.x, state.x.shape[0]
    layer = points_spec.layer
    units = unit_layers(group.requests)
    # Layers captured on the way: units, and layers differentiated along an input path.
    capture = tuple(dict.fromkeys([*(w for w in group.wrt if w and w != layer), *units]))
    start_all, end_all = path_ends(path, layer, state)
    alphas, weights = alphas_and_weights(path.rule, path.steps)
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    per_chunk = ops.per_chunk(job, group, state, n * path.steps)
    for (s0, s1), (n0, n1) in path_chunks(path.steps, n, per_chunk):
        # A function per chunk: its tensors are freed before the next chunk starts.
        chunk = ((s0, s1), (n0, n1))
        _path_chunk(ops, module, job, group, state, chunk, (start_all, end_all), alphas, w, capture)


def _path_chunk(
    ops: Ops,
    module: torch.nn.Module,
    job: Job,
    group: Group,
    state: Any,
    chunk: tuple[tuple[int, int], tuple[int, int]],
    ends: tuple[torch.Tensor, torch.Tensor],
    alphas: list[float],
    w: torch.Tensor,
    capture: tuple[str, ...],
) -> None:
    (s0, s1), (n0, n1) = chunk
    x, n, layer, path = state.x, state.x.shape[0], group.points.layer, group.points.path
    assert path is not None
    points = path_points(ends[0][n0:n1], ends[1][n0:n1], alphas[s0:s1]).requires_grad_(True)
    k = s1 - s0
    rows = {}
    for r in group.requests:
        sample_rows = ops.rows(r, state, n0, n1)
        rows[r.key] = None if sample_rows is None else sample_rows.repeat(1, k)
    with torch.enable_grad():
        if layer is None and not capture and compilable(job, group, rows):
            assert state.logits is not None
            grads = compiled_backward(module, group, points, rows, state.logits.shape[1])
        else:
            # The start's scores (the delta) come with the first step of an input path.
            starts = None if layer is not None else start_rows(path, ends[0], alphas, s0, n0, n1)
            with captured(module, capture) as acts:
                if layer is None:
                    batch = points if starts is None else torch.cat([points, starts])
                    out = ops.forward(module, batch)
                else:
                    repeated = x[n0:n1].repeat(k, *([1] * (x.ndim - 1)))
                    with replaced(module, layer, points):
                        out = ops.forward(module, repeated)
            wrts = {w: points if w == layer else acts[w] for w in group.wrt}
            seen = acts
            if layer is None:
                span, shared = (s0, n0, n1, n), shared_start(path, ends[0])
                key = ("starts", group.points.key)
                out, seen = record_starts(
                    state.extra, key, out, acts, len(points), alphas, span, shared
                )
            grads = backward_by_source(ops.backward, group, out, seen, wrts, rows, job, state)
            grads = {key: g[:, : len(points)] for key, g in grads.items()}
            del out, acts, seen
    del points
    for key in list(grads):
        summed = integrate(grads.pop(key), w[s0:s1])
        if key in state.grads:
            state.grads[key][:, n0:n1] += summed
        else:
            write(state.grads, key, summed, slice(n0, n1), n, dim=1)
        del summed


def path_ends(path: PathSpec, layer: str | None, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end of a path, for all samples; a window holds the outside at the end.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> state = SimpleNamespace(x=torch.ones(2, 3))
    >>> start, end = path_ends(PathSpec(4, "gausslegendre", 0.5, "half"), None, state)
    >>> start[0].tolist(), end[0].tolist()
    ([0.5, 0.5, 0.5], [1.0, 1.0, 1.0])
    """
    if layer is None:
        start, end = baseline_input(path.baseline, state.x), state.x
    else:
        start, end = state.baselines[(path.baseline_key, layer)], state.acts[layer]
    what = "the inputs" if layer is None else f"layer {layer!r}"
    return path_start(start, end, path.window, what), end

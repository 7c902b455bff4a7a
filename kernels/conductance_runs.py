"""Layer conductance passes: an input path, the layer captured and differentiated at each point.

The ``S + 1`` points (:func:`~algebra.kernels.layer_paths.conductance_alphas`) run in
chunks of steps x samples; each chunk's one batched backward gives the targets' gradients
``g_s`` with respect to the layer, and conductance ``sum_s g_s (a_{s+1} - a_s)`` is summed
as the chunks come (the last point of a chunk is paired with the first of the next chunk
on the same samples), so neither all gradients nor all activations are held at once.
"""

from __future__ import annotations

from typing import Any

import torch

from .capture import captured
from .chunks import path_chunks
from .layer_paths import conductance_alphas
from .ops import Ops, tiled_rows
from .path_runs import baseline_input
from .paths import path_points
from .plan import Group, Job
from .point_specs import ConductanceSpec
from .unit_targets import backward_by_source, unit_layers
from .windows import path_start


def run_conductance(module: torch.nn.Module, job: Job, group: Group, state: Any, ops: Ops) -> None:
    """Run a conductance group: ``state.grads[key]`` is each request's conductance.

    Examples
    --------
    >>> from algebra.kernels.plan import Output, PathSpec, Points, Request, TargetSpec
    >>> from algebra.kernels.execute import execute
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> points = Points("conductance", PathSpec(8, "riemann_trapezoid", 0.0, "0.0"),
    ...                 spec=ConductanceSpec(8, "riemann_trapezoid"))
    >>> group = Group(points, (Request("r", TargetSpec("index", 0), "1"),))
    >>> job = Job(net.eval(), torch.rand(2, 3), groups=(Group(Points("inputs")), group),
    ...           results=(Output("c", "r", "conductance", layer="1"),))
    >>> tuple(execute(job).tasks["c"].values.shape)
    (1, 2, 4)
    """
    spec: ConductanceSpec = group.points.spec
    path = group.points.path
    assert path is not None
    x, n = state.x, state.x.shape[0]
    start_all = path_start(baseline_input(path.baseline, x), x, path.window)
    alphas = conductance_alphas(spec.rule, spec.steps)
    points_per_sample = len(alphas)
    capture = tuple(dict.fromkeys([*(w for w in group.wrt if w), *unit_layers(group.requests)]))
    per_chunk = ops.per_chunk(job, group, state, n * points_per_sample)
    last: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
    for (s0, s1), (n0, n1) in path_chunks(points_per_sample, n, per_chunk):
        k = s1 - s0
        points = path_points(start_all[n0:n1], x[n0:n1], alphas[s0:s1])
        points.requires_grad_(None in group.wrt)
        with torch.enable_grad(), captured(module, capture) as acts:
            out = ops.forward(module, points)
        rows = tiled_rows(ops, group, state, n0, n1, k)
        wrts = {w: points if w is None else acts[w] for w in group.wrt}
        grads = backward_by_source(ops.backward, group, out, acts, wrts, rows, job, state)
        for req in group.requests:
            g = grads[req.key]
            g = g.reshape(g.shape[0], k, n1 - n0, *g.shape[2:])
            a = wrts[req.wrt].detach()
            a = a.reshape(k, n1 - n0, *a.shape[1:])
            total = (g[:, :-1] * (a[1:] - a[:-1])).sum(1)
            before = last.get((req.key, n0))
            if before is not None and s0 > 0:  # the previous chunk's last point, then this one
                total = total + before[0] * (a[0] - before[1])
            last[(req.key, n0)] = (g[:, -1].detach(), a[-1])
            if req.key not in state.grads:
                state.grads[req.key] = total.new_zeros(total.shape[0], n, *total.shape[2:])
            state.grads[req.key][:, n0:n1] += total.detach()
        del out, points, grads, acts

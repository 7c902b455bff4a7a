"""Score-CAM passes: the inputs masked by each channel of a layer, a perturbation stream.

The layer's activations at the inputs (captured by the inputs' pass) give ``K`` masks per
sample (:func:`~algebra.kernels.score_cam.score_cam_masks`); the ``K * N`` masked inputs
run without gradients in chunks of channels x samples, built only when their chunk runs,
and one forward per chunk scores every target of every Score-CAM request at once.
"""

from __future__ import annotations

from typing import Any

import torch

from .capture import captured
from .chunks import path_chunks
from .grids import to_grid
from .ops import Ops, tiled_rows
from .plan import Group, Job
from .point_specs import MaskSpec
from .score_cam import score_cam_masks
from .targets import scalar_outputs
from .unit_targets import unit_layers, with_units


def run_masks(module: torch.nn.Module, job: Job, group: Group, state: Any, ops: Ops) -> None:
    """Run a masks group: ``state.extra[("scores", key)]`` ``[T, N, K]`` per request.

    Examples
    --------
    >>> from algebra.kernels.plan import Output, Points, Request, TargetSpec
    >>> from algebra.kernels.execute import execute
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(3 * 16, 2)).eval()
    >>> masks = Group(Points("masks", layer="1", spec=MaskSpec(3, None, "None")),
    ...               (Request("r", TargetSpec("index", 1)),))
    >>> job = Job(net, torch.rand(2, 1, 4, 4), groups=(Group(Points("inputs"), capture=("1",)), masks),
    ...           results=(Output("s", "r", "score_cam", layer="1"),))
    >>> tuple(execute(job).tasks["s"].values.shape)
    (1, 2, 4, 4)
    """
    spec: MaskSpec = group.points.spec
    layer = group.points.layer
    assert layer is not None
    x, n = state.x, state.x.shape[0]
    acts = to_grid(state.acts[layer], spec.grid, layer)
    masks = score_cam_masks(acts, tuple(x.shape[2:]))
    channels = masks.shape[1]
    if channels != spec.channels:
        raise ValueError(
            f"score_cam: layer {layer!r} has {channels} channels now, but the query was "
            f"built when it had {spec.channels}; build the query again"
        )
    capture = unit_layers(group.requests)
    per_chunk = ops.per_chunk(job, group, state, n * channels)
    scores: dict[str, torch.Tensor] = {}
    for (k0, k1), (n0, n1) in path_chunks(channels, n, per_chunk):
        k, m = k1 - k0, n1 - n0
        chunk = masks[n0:n1, k0:k1].transpose(0, 1)  # [k, m, *spatial], channel-major rows
        points = (x[n0:n1][None] * chunk[:, :, None]).flatten(0, 1)
        with torch.no_grad(), captured(module, capture) as captured_acts:
            out = ops.forward(module, points)
            rows = tiled_rows(ops, group, state, n0, n1, k)
            outputs, shifted = with_units(group.requests, out, captured_acts, rows)
            for req in group.requests:
                r = shifted[req.key]
                if r is None:
                    value = scalar_outputs(req.target, out)[None]
                else:
                    value = outputs.gather(1, r.T).T  # [T, k * m]
                value = value.reshape(value.shape[0], k, m).transpose(1, 2)
                if req.key not in scores:
                    scores[req.key] = value.new_zeros(value.shape[0], n, channels)
                scores[req.key][:, n0:n1, k0:k1] = value
        del out, points
    for key, value in scores.items():
        state.extra[("scores", key)] = value

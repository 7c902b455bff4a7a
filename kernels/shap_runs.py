"""GradientSHAP and expected gradients passes: random points, one forward, one batched backward.

The draws (a baseline and a point on the line to the noisy input, per draw and sample) are
made once per pass from the spec's seed; the ``S * N`` points run in chunks of draws x
samples. Before them, one gradient-free forward over the ``B`` baselines gives their
logits (for the deltas) and the layers' activations there (for the layer form); with noise
(``stdev > 0``) one over the noisy inputs gives theirs. Without noise the ends are the
inputs, whose logits and activations the inputs' pass already has.
"""

from __future__ import annotations

from typing import Any

import torch

from .capture import captured
from .chunks import path_chunks
from .deltas import drawn_scores, target_scores
from .noise import draw_noise
from .ops import Ops, accumulate, forward_rows, store_means, tiled_rows
from .packed import masked_noise, pin
from .plan import Group, Job
from .point_specs import ShapSpec
from .shap import shap_attribution, shap_draws, shap_points
from .unit_targets import backward_by_source, is_unit, unit_layers


def gradient_shap_draws(
    x: torch.Tensor, baselines: int, samples: int, stdev: float, seed: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The draws of one GradientSHAP pass: baseline indices ``[S, N]``, alphas ``[S, N]``
    and the noise ``[S, N, ...]`` on the inputs (``None`` when ``stdev`` is 0).

    Indices and alphas come from a generator seeded with ``seed``, the noise (absolute
    ``stdev``, as Captum's ``stdevs``) from one seeded with ``seed + 1``; without a seed,
    from torch's global RNG.

    Examples
    --------
    >>> x = torch.zeros(2, 3)
    >>> index, alpha, noise = gradient_shap_draws(x, 4, 5, 0.1, seed=0)
    >>> tuple(index.shape), tuple(noise.shape)
    ((5, 2), (5, 2, 3))
    >>> torch.equal(alpha, gradient_shap_draws(x, 4, 5, 0.1, seed=0)[1])
    True
    """
    index, alpha = shap_draws(samples, x.shape[0], baselines, seed, x.dtype, x.device)
    if stdev == 0:
        return index, alpha, None
    noise_seed = None if seed is None else seed + 1
    return index, alpha, draw_noise(x, samples, stdev, relative=False, seed=noise_seed)


def run_shap(module: torch.nn.Module, job: Job, group: Group, state: Any, ops: Ops) -> None:
    """Run a GradientSHAP group: attributions (local and global) and deltas per request.

    Examples
    --------
    >>> from algebra.kernels.plan import Output, Points, Request, TargetSpec
    >>> from algebra.kernels.execute import execute
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> spec = ShapSpec(torch.zeros(2, 3), "b", samples=6, stdev=0.0, seed=0)
    >>> group = Group(Points("shap", spec=spec), (Request("r", TargetSpec("index", 1)),))
    >>> job = Job(net.eval(), torch.rand(4, 3), groups=(Group(Points("inputs")), group),
    ...           results=(Output("s", "r", "shap"),))
    >>> tuple(execute(job).tasks["s"].values.shape)
    (1, 4, 3)
    """
    spec: ShapSpec = group.points.spec
    x, n = state.x, state.x.shape[0]
    baselines = spec.baselines.to(device=x.device, dtype=x.dtype)
    index, alpha, noise = gradient_shap_draws(
        x, len(baselines), spec.samples, spec.stdev, spec.seed
    )
    noise = None if noise is None else masked_noise(noise, module)  # never on token ids
    layers = tuple(w for w in group.wrt if w)
    cap = ops.per_chunk(job, group, state, len(baselines))
    base_logits, base_acts = forward_rows(ops, module, baselines, cap, layers)
    if noise is None:
        ends: torch.Tensor = x[None]
        end_logits = state.extra["inputs_logits"][None]
        end_acts = {layer: state.acts[layer][None] for layer in layers}
    else:
        ends = x[None] + noise
        cap = ops.per_chunk(job, group, state, spec.samples * n)
        flat_logits, flat_acts = forward_rows(ops, module, ends.flatten(0, 1), cap, layers)
        end_logits = flat_logits.reshape(spec.samples, n, -1)
        end_acts = {k: v.reshape(spec.samples, n, *v.shape[1:]) for k, v in flat_acts.items()}
    capture = tuple(dict.fromkeys([*layers, *unit_layers(group.requests)]))
    per_chunk = ops.per_chunk(job, group, state, n * spec.samples)
    sums: dict[str, dict[str, torch.Tensor]] = {}
    for (s0, s1), (n0, n1) in path_chunks(spec.samples, n, per_chunk):
        k = s1 - s0
        draws = index[s0:s1, n0:n1]
        chunk_ends = ends[s0:s1, n0:n1] if noise is not None else ends[:, n0:n1]
        points, starts = shap_points(chunk_ends, baselines, draws, alpha[s0:s1, n0:n1])
        points = pin(points, chunk_ends, module)  # drawn references carry no sample
        flat = points.flatten(0, 1).requires_grad_(None in group.wrt)
        with torch.enable_grad(), captured(module, capture) as acts:
            out = ops.forward(module, flat)
        rows = tiled_rows(ops, group, state, n0, n1, k)
        wrts = {w: flat if w is None else acts[w] for w in group.wrt}
        grads = backward_by_source(ops.backward, group, out, acts, wrts, rows, job, state)
        samples = torch.arange(n0, n1, device=x.device)
        for req in group.requests:
            g = grads[req.key]
            g = g.reshape(g.shape[0], k, n1 - n0, *g.shape[2:])
            if req.wrt is None:
                end, start = chunk_ends, starts
            else:
                end = _slice(end_acts[req.wrt], s0, s1, n0, n1, noise is not None)
                start = base_acts[req.wrt][draws]
            attribution = shap_attribution(g, end, start, per_draw=True)
            parts = {"local": g.sum(1), "global": attribution.sum(1)}
            r = rows[req.key]
            if r is not None and not is_unit(req.target):
                r = r[:, : n1 - n0]
                f_end = _slice(end_logits, s0, s1, n0, n1, noise is not None)
                end_scores = torch.stack([target_scores(f, r) for f in f_end], 1)
                explained = end_scores - drawn_scores(base_logits, r, draws)
                parts["delta"] = (attribution.flatten(3).sum(-1) - explained).sum(1)
            accumulate(sums.setdefault(req.key, {}), parts, samples, n)
        del out, points, flat, grads, acts
    store_means(state, sums, spec.samples)


def _slice(
    values: torch.Tensor, s0: int, s1: int, n0: int, n1: int, per_draw: bool
) -> torch.Tensor:
    """Draws ``s0:s1`` of samples ``n0:n1`` of ``[S or 1, N, ...]`` values."""
    if per_draw:
        return values[s0:s1, n0:n1]
    part = values[:, n0:n1]
    return part.expand(s1 - s0, *part.shape[1:])

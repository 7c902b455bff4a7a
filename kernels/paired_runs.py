"""DeepLift and DeepLiftShap passes: inputs paired with references under DeepLift's rules.

Each chunk is one batch ``[x; x0]`` of pairs (the inputs, then their references), one
forward inside :func:`~algebra.kernels.deeplift.deeplift_rules` capturing the layers
differentiated, and one batched backward that seeds both halves with every target.
Per request it keeps the multipliers (the input half's gradient, averaged over a sample's
references), the attribution ``g * (x - x0)`` and the convergence delta from the pair's
own logits (no extra forward).
"""

from __future__ import annotations

from typing import Any

import torch

from .capture import captured
from .chunks import sample_chunks
from .deeplift import deeplift_rules
from .deltas import target_scores
from .ops import Ops, accumulate, store_means
from .packed import pin
from .pairs import deeplift_attribution, halves
from .path_runs import baseline_input
from .plan import Group, Job
from .point_specs import PairedSpec
from .unit_targets import backward_by_source, unit_layers, with_units
from .windows import path_start


def references(
    baseline: Any, x: torch.Tensor, pairs: torch.Tensor, count: int, window: Any = None
) -> torch.Tensor:
    """The references of ``pairs`` (indices of pairs ``n * B + b``, or samples when
    ``count`` is 0): ``baseline`` (a number, a tensor broadcastable to ``x``, or ``B``
    baselines ``[B, ...]`` when ``count = B``); with a ``window``, the input outside it.

    Examples
    --------
    >>> x = torch.ones(2, 3)
    >>> references(0.5, x, torch.tensor([1]), 0)
    tensor([[0.5000, 0.5000, 0.5000]])
    >>> references(torch.tensor([[0.0, 0, 0], [9, 9, 9]]), x, torch.tensor([0, 1, 3]), 2)
    tensor([[0., 0., 0.],
            [9., 9., 9.],
            [9., 9., 9.]])
    """
    samples = pairs if count == 0 else pairs // count
    ends = x[samples]
    if count:
        refs = baseline.to(device=x.device, dtype=x.dtype)[pairs % count]
    else:
        refs = baseline_input(baseline, x)[samples]
    return path_start(refs, ends, window)


def run_paired(module: torch.nn.Module, job: Job, group: Group, state: Any, ops: Ops) -> None:
    """Run a paired group: multipliers, attributions and deltas of every request.

    Examples
    --------
    >>> from algebra.kernels.plan import Output, PathSpec, Points, Request, TargetSpec
    >>> from algebra.kernels.execute import execute
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> points = Points("paired", PathSpec(1, "", 0.0, "0.0"), spec=PairedSpec())
    >>> group = Group(points, (Request("r", TargetSpec("index", 1)),))
    >>> job = Job(net.eval(), torch.rand(5, 3), groups=(Group(Points("inputs")), group),
    ...           results=(Output("d", "r", "deeplift"),))
    >>> res = execute(job).tasks["d"]
    >>> tuple(res.values.shape), bool(res.delta.abs().max() < 1e-5)   # complete
    ((1, 5, 3), True)
    """
    spec: PairedSpec = group.points.spec
    path = group.points.path
    assert path is not None
    x, n = state.x, state.x.shape[0]
    count = spec.baselines
    pairs = n * spec.pairs_per_sample
    layers = tuple(dict.fromkeys([*(w for w in group.wrt if w), *unit_layers(group.requests)]))
    per_pairs = max(1, ops.per_chunk(job, group, state, n * spec.rows_per_sample) // 2)
    sums: dict[str, dict[str, torch.Tensor]] = {}
    for p0, p1 in sample_chunks(pairs, per_pairs):
        index = torch.arange(p0, p1, device=x.device)
        samples = index if count == 0 else index // count
        refs = pin(references(path.baseline, x, index, count, path.window), x[samples], module)
        points = torch.cat([x[samples], refs]).requires_grad_(None in group.wrt)
        with torch.enable_grad(), deeplift_rules(module), captured(module, layers) as acts:
            out = ops.forward(module, points)
        rows = {}
        for req in group.requests:
            r = ops.rows(req, state, 0, n)
            rows[req.key] = None if r is None else r[:, samples].repeat(1, 2)
        wrts = {w: points if w is None else acts[w] for w in group.wrt}
        grads = backward_by_source(ops.backward, group, out, acts, wrts, rows, job, state)
        scores, rows = with_units(group.requests, out.detach(), acts, rows)  # for the deltas
        end, start = halves(scores.detach())
        for req in group.requests:
            at = wrts[req.wrt].detach()
            g = deeplift_attribution(grads[req.key], at, multiply_by_inputs=False)
            attribution = deeplift_attribution(grads[req.key], at)
            parts = {"local": g, "global": attribution}
            r = rows[req.key]
            if r is not None:
                half = r[:, : len(index)]
                explained = target_scores(end, half) - target_scores(start, half)
                parts["delta"] = attribution.flatten(2).sum(-1) - explained
            accumulate(sums.setdefault(req.key, {}), parts, samples, n)
        del out, points, grads, acts
    store_means(state, sums, spec.pairs_per_sample)

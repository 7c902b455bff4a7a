"""Units of a layer as targets inside a pass: scores from an activation of the same forward.

A request whose target is ``unit`` or ``units`` (``TargetSpec.value = (layer, spec,
count)``) differentiates scores ``[B, U]`` computed from the layer's activation captured in
the same forward (:func:`~algebra.kernels.units.unit_scores`), like logits: its rows are
``0..U-1``. Each source of scores (the logits, each layer's units) gets its own backward
after the shared forward (:func:`backward_by_source`), so a unit's backward starts at its
layer and does not run through the layers above it. :func:`with_units` appends the units'
scores to the logits, for the scores of a pass (DeepLift's deltas, Score-CAM).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import torch

from .plan import Group, Job, Request, TargetSpec
from .units import unit_scores

UNIT_KINDS = ("unit", "units")


def is_unit(target: TargetSpec) -> bool:
    """Whether ``target`` names units of a layer.

    Examples
    --------
    >>> is_unit(TargetSpec("units", ("b3", "all", 8))), is_unit(TargetSpec("pred"))
    (True, False)
    """
    return target.kind in UNIT_KINDS


def scores_spec(target: TargetSpec) -> object:
    """What :func:`~algebra.kernels.units.unit_scores` takes for ``target``.

    One unit (``unit``) is an int, an index tuple or a callable returning ``[N]``; several
    (``units``) are ``"all"``, a tuple of units (given as a list) or a callable returning
    ``[N, U]``.

    Examples
    --------
    >>> scores_spec(TargetSpec("units", ("b3", (1, (0, 2)), 2)))
    [1, (0, 2)]
    >>> scores_spec(TargetSpec("unit", ("b3", (0, 2), 1)))
    (0, 2)
    """
    spec = target.value[1]
    if target.kind == "units" and isinstance(spec, tuple):
        return list(spec)
    return spec


def source_key(target: TargetSpec) -> str:
    """Equal for unit targets that read the same scores.

    Examples
    --------
    >>> source_key(TargetSpec("unit", ("b3", 2, 1)))
    'b3|unit|2'
    """
    layer, spec = target.value[0], target.value[1]
    return f"{layer}|{target.kind}|{spec!r}"


def unit_layers(requests: Iterable[Request]) -> tuple[str, ...]:
    """The layers whose activations the requests' unit targets read, each once.

    Examples
    --------
    >>> unit_layers([Request("a", TargetSpec("units", ("b3", "all", 4))),
    ...              Request("b", TargetSpec("pred"))])
    ('b3',)
    """
    return tuple(dict.fromkeys(r.target.value[0] for r in requests if is_unit(r.target)))


def with_units(
    requests: Iterable[Request],
    outputs: torch.Tensor,
    acts: dict[str, torch.Tensor],
    rows: dict[str, torch.Tensor | None],
) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """The logits with every unit source's scores appended, and the requests' rows shifted.

    ``acts`` holds the captured activations of this forward (``[B, ...]`` each, as
    ``outputs``); ``rows`` each request's target rows (``[T, B]``; units as ``0..U-1``).

    Examples
    --------
    >>> logits = torch.zeros(2, 3)
    >>> acts = {"h": torch.arange(4.0).reshape(2, 2)}
    >>> req = Request("u", TargetSpec("units", ("h", "all", 2)))
    >>> out, rows = with_units([req], logits, acts, {"u": torch.tensor([[0, 0], [1, 1]])})
    >>> out[:, 3:], rows["u"]
    (tensor([[0., 1.],
            [2., 3.]]), tensor([[3, 3],
            [4, 4]]))
    """
    units = [r for r in requests if is_unit(r.target)]
    if not units:
        return outputs, rows
    columns = [outputs]
    offsets: dict[str, int] = {}
    width = outputs.shape[1]
    shifted = dict(rows)
    for req in units:
        key = source_key(req.target)
        if key not in offsets:
            layer = req.target.value[0]
            scores = unit_scores(acts[layer], scores_spec(req.target), layer)
            offsets[key] = width
            width += scores.shape[1]
            columns.append(scores.to(outputs.dtype))
        row = rows[req.key]
        assert row is not None
        shifted[req.key] = row + offsets[key]
    return torch.cat(columns, 1), shifted


def backward_by_source(
    backward: Callable[..., dict[str, torch.Tensor]],
    group: Group,
    outputs: torch.Tensor,
    acts: dict[str, torch.Tensor],
    wrts: dict[str | None, torch.Tensor],
    rows: dict[str, torch.Tensor | None],
    job: Job,
    state: Any,
) -> dict[str, torch.Tensor]:
    """Every request's gradients: the logits' requests, then each layer's units, each set
    through ``backward`` (the executor's, with ``keep`` for all but the last).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 2))
    >>> x = torch.ones(4, 2, requires_grad=True)
    >>> h = net[0](x)
    >>> out = net[1](h)
    >>> reqs = (Request("c", TargetSpec("index", 1)), Request("u", TargetSpec("units", ("0", "all", 3))))
    >>> rows = {"c": torch.ones(1, 4, dtype=torch.long), "u": torch.arange(3)[:, None].expand(3, 4)}
    >>> def backward(g, o, w, r, job, state, keep=False):
    ...     return {q.key: torch.autograd.grad(o[:, r[q.key][0, 0]].sum(), w[None], retain_graph=True)[0][None]
    ...             for q in g.requests}
    >>> from algebra.kernels.plan import Points
    >>> grads = backward_by_source(backward, Group(Points("inputs"), reqs), out, {"0": h}, {None: x}, rows, None, None)
    >>> torch.equal(grads["u"][0], net[0].weight[0].expand(4, 2))
    True
    """
    sources: dict[str, list[Request]] = {}
    for req in group.requests:
        sources.setdefault(source_key(req.target) if is_unit(req.target) else "", []).append(req)
    grads: dict[str, torch.Tensor] = {}
    keys = list(sources)
    for i, key in enumerate(keys):
        requests = sources[key]
        scores = outputs
        if key:  # a layer's units
            layer = requests[0].target.value[0]
            scores = unit_scores(acts[layer], scores_spec(requests[0].target), layer)
        part = replace(group, requests=tuple(requests))
        used = {w: wrts[w] for w in part.wrt}
        chosen = {r.key: rows[r.key] for r in requests}
        grads.update(backward(part, scores, used, chosen, job, state, keep=i < len(keys) - 1))
    return grads

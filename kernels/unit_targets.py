"""Units of a layer as targets inside a pass: their scores join the logits as extra columns.

A request whose target is ``unit`` or ``units`` (``TargetSpec.value = (layer, spec,
count)``) differentiates scores ``[B, U]`` computed from the layer's activation captured in
the same forward (:func:`~algebra.kernels.units.unit_scores`). The scores of every unit
source are appended to the logits, ``[B, C + U + ...]``, and the units' rows shifted to
their columns, so class targets and units of any layer share one batched backward.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .plan import Request, TargetSpec
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

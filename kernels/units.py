"""Units of a layer as targets: scores ``[N, U]`` from a captured activation.

A unit is an int (a channel, summed over the rest of its dims), an index tuple into one
sample's activation (ints and slices; what a slice selects is summed, as Captum's neuron
selectors), a callable over the activation ``[N, ...]`` returning ``[N]`` (one unit) or
``[N, U]``, ``"all"`` (every channel, each summed over the rest), or a list of ints and
tuples. Like logits ``[N, C]``, the scores ``[N, U]`` are differentiated in one batched
backward with every unit as a target row (``rows = arange(U)``), which gives the gradients
of all units with respect to the input (Captum's NeuronGradient, NeuronIntegratedGradients,
NeuronGuidedBackprop, ... with one backward instead of one per unit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

UnitSpec = int | tuple | str | list | Callable[[torch.Tensor], torch.Tensor]


def _as_index(unit: Any) -> tuple:
    if isinstance(unit, bool) or not isinstance(unit, (int, slice, tuple)):
        raise ValueError(
            "unit: expected an int (a channel), an index tuple, a callable, 'all' or a list "
            f"of ints and tuples; got {unit!r}"
        )
    index = unit if isinstance(unit, tuple) else (unit,)
    for i in index:
        if isinstance(i, bool) or not isinstance(i, (int, slice)):
            raise ValueError(f"unit: an index tuple holds ints and slices; got {unit!r}")
    return index


def check_units(spec: UnitSpec, shape: tuple[int, ...], layer: str = "layer") -> int:
    """Validate ``spec`` against one sample's activation ``shape``; the number of units.

    A callable is checked when applied (:func:`unit_scores`); its count is ``-1`` here
    (unknown until the activation is seen).

    Examples
    --------
    >>> check_units("all", (32, 8, 8)), check_units([0, (1, 2, 3)], (32, 8, 8))
    (32, 2)
    >>> check_units(40, (32, 8, 8), "b3")
    Traceback (most recent call last):
    ValueError: unit: index 40 is outside layer 'b3''s dim 0 of size 32 (per-sample shape [32, 8, 8]; valid 0..31)
    """
    if callable(spec):
        return -1
    if isinstance(spec, str):
        if spec != "all":
            raise ValueError(f"unit: expected 'all' for every channel; got {spec!r}")
        if not shape:
            raise ValueError(f"unit: layer {layer!r} has scalar outputs and no channels")
        return shape[0]
    units = spec if isinstance(spec, list) else [spec]
    if not units:
        raise ValueError("unit: expected at least one unit; got an empty list")
    for unit in units:
        index = _as_index(unit)
        if len(index) > len(shape):
            raise ValueError(
                f"unit: index {unit!r} has {len(index)} entries, but layer {layer!r}'s "
                f"activation has {len(shape)} dims per sample ({list(shape)})"
            )
        for dim, (i, size) in enumerate(zip(index, shape, strict=False)):
            if isinstance(i, int) and not -size <= i < size:
                raise ValueError(
                    f"unit: index {i} is outside layer {layer!r}'s dim {dim} of size {size} "
                    f"(per-sample shape {list(shape)}; valid 0..{size - 1})"
                )
    return len(units)


def unit_scores(acts: torch.Tensor, spec: UnitSpec, layer: str = "layer") -> torch.Tensor:
    """The units' scores ``[N, U]`` from a layer's activation ``[N, ...]``.

    Examples
    --------
    >>> a = torch.arange(2 * 3 * 2.0).reshape(2, 3, 2)      # N=2, 3 channels of length 2
    >>> unit_scores(a, 1)
    tensor([[ 5.],
            [17.]])
    >>> unit_scores(a, "all")
    tensor([[ 1.,  5.,  9.],
            [13., 17., 21.]])
    >>> unit_scores(a, [(0, 1), (2, slice(None))])
    tensor([[ 1.,  9.],
            [ 7., 21.]])
    >>> unit_scores(a, lambda t: t[:, 0, 0])
    tensor([[0.],
            [6.]])
    """
    n = acts.shape[0]
    if callable(spec):
        scores = spec(acts)
        if (
            not isinstance(scores, torch.Tensor)
            or scores.ndim not in (1, 2)
            or (scores.shape[0] != n)
        ):
            got = list(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(
                f"unit: a callable unit must return [N] or [N, U] scores from layer {layer!r}'s "
                f"activation {list(acts.shape)}; it returned {got}"
            )
        return scores[:, None] if scores.ndim == 1 else scores
    check_units(spec, tuple(acts.shape[1:]), layer)
    if isinstance(spec, str):  # "all"
        return acts.reshape(n, acts.shape[1], -1).sum(-1)
    units = spec if isinstance(spec, list) else [spec]
    columns = [acts[(slice(None), *_as_index(u))].reshape(n, -1).sum(-1) for u in units]
    return torch.stack(columns, 1)


def unit_rows(count: int, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Target rows ``[U, N]`` that differentiate every unit for every sample in one backward.

    Examples
    --------
    >>> unit_rows(3, 2)
    tensor([[0, 0],
            [1, 1],
            [2, 2]])
    """
    return torch.arange(count, device=device)[:, None].expand(count, n)

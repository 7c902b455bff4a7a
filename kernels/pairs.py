"""Inputs paired with references in one batch (DeepLift).

A paired batch is ``[x; x0]``: ``2N`` rows, the inputs then their references, so one
forward gives each nonlinearity a row and its reference together (Captum's DeepLift). The
backward seeds both halves with the target; the input half's gradient is the multiplier.
DeepLiftShap pairs every input with every baseline and averages (kernels/paired_runs.py).
"""

from __future__ import annotations

import torch


def paired(x: torch.Tensor, baseline: torch.Tensor | float) -> torch.Tensor:
    """The inputs and their references as one batch ``[x; x0]`` of ``2N`` rows.

    ``baseline`` is a number, a tensor of one sample's shape, ``[1, ...]`` or ``[N, ...]``.

    Examples
    --------
    >>> paired(torch.ones(2, 3), 0.5)[:, 0]
    tensor([1.0000, 1.0000, 0.5000, 0.5000])
    """
    if isinstance(baseline, torch.Tensor):
        ref = baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
    else:
        ref = torch.full_like(x, float(baseline))
    return torch.cat([x, ref])


def halves(t: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and reference halves of a paired tensor along ``dim``.

    Examples
    --------
    >>> halves(torch.arange(4))
    (tensor([0, 1]), tensor([2, 3]))
    """
    if t.shape[dim] % 2:
        raise ValueError(
            f"deeplift: expected a paired batch (inputs then references) along dim {dim}; "
            f"got {t.shape[dim]} rows"
        )
    first, second = t.chunk(2, dim)
    return first, second


def deeplift_attribution(
    grads: torch.Tensor, points: torch.Tensor, multiply_by_inputs: bool = True
) -> torch.Tensor:
    """DeepLift from a paired backward: ``grads`` ``[T, 2N, ...]``, ``points`` ``[2N, ...]``.

    ``(x - x0) * g`` with ``g`` the input half's gradient (``g`` alone, Captum's local
    attribution, without ``multiply_by_inputs``). ``points`` are the paired inputs, or a
    layer's paired activations (Captum's LayerDeepLift).

    Examples
    --------
    >>> deeplift_attribution(torch.ones(1, 4, 2), paired(torch.full((2, 2), 3.0), 1.0))
    tensor([[[2., 2.],
             [2., 2.]]])
    """
    g, _ = halves(grads, 1)
    if not multiply_by_inputs:
        return g
    x, x0 = halves(points)
    return g * (x - x0)

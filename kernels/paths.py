"""Integration rules for integrated gradients: the points (alphas) and their weights."""

from __future__ import annotations

import numpy as np
import torch

from .plan import INTEGRATION_RULES


def alphas_and_weights(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """Points in [0, 1] along the path and their quadrature weights, as Captum defines them.

    Examples
    --------
    >>> alphas_and_weights("riemann_trapezoid", 3)
    ([0.0, 0.5, 1.0], [0.16666666666666666, 0.3333333333333333, 0.16666666666666666])
    >>> [round(float(a), 4) for a in alphas_and_weights("gausslegendre", 2)[0]]
    [0.2113, 0.7887]
    """
    n = steps
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return list(0.5 * (1 + nodes)), list(0.5 * weights)
    weights = [1 / n] * n
    if rule == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        alphas = torch.linspace(0, 1, n)
    elif rule == "riemann_left":
        alphas = torch.linspace(0, 1 - 1 / n, n)
    elif rule == "riemann_middle":
        alphas = torch.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    elif rule == "riemann_right":
        alphas = torch.linspace(1 / n, 1, n)
    else:
        raise ValueError(
            f"method: unknown integration rule {rule!r}; expected one of {INTEGRATION_RULES}"
        )
    return alphas.tolist(), weights


def path_points(start: torch.Tensor, end: torch.Tensor, alphas: list[float]) -> torch.Tensor:
    """``start + alpha * (end - start)`` for every alpha, stacked step-major: ``[S * N, ...]``.

    Examples
    --------
    >>> path_points(torch.zeros(1, 2), torch.ones(1, 2), [0.0, 0.5])
    tensor([[0.0000, 0.0000],
            [0.5000, 0.5000]])
    """
    a = torch.tensor(alphas, dtype=start.dtype, device=start.device)
    a = a.reshape(-1, *([1] * start.ndim))
    return (start + a * (end - start)).flatten(0, 1)


def integrate(grads: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum over steps of step-major gradients ``[T, S * N, ...]`` -> ``[T, N, ...]``.

    Examples
    --------
    >>> integrate(torch.ones(1, 4, 2), torch.tensor([0.5, 0.5]))
    tensor([[[1., 1.],
             [1., 1.]]])
    """
    steps = len(weights)
    t, sn = grads.shape[:2]
    per_step = grads.reshape(t, steps, sn // steps, *grads.shape[2:])
    return torch.einsum("ts...,s->t...", per_step, weights.to(grads.dtype))

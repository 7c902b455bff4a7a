"""Integration rules for integrated gradients: the points (alphas) and their weights."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .path_steps import check_path_steps

# The most steps each rule is built for. Gauss-Legendre nodes cost O(steps^2) to compute
# (0.3 s at 2000 steps, a few seconds at the cap, once: rules are cached) and their end
# weights lose accuracy as steps grow (relative error near 1e-9 at the cap); a Riemann
# rule is cheap to build at any size, and the cap keeps its lists of points in memory.
# Up to this size, numpy's own Gauss-Legendre rule (Captum's, to the last bit); above it,
# Newton's method on the Legendre recurrence, which is faster and more accurate there.
_NUMPY_GAUSS = 128


def alphas_and_weights(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """Points in [0, 1] along the path and their quadrature weights, as Captum defines them.

    Built once per rule and size (cached); ``steps`` is checked by
    :func:`check_path_steps`.

    Examples
    --------
    >>> alphas_and_weights("riemann_trapezoid", 3)
    ([0.0, 0.5, 1.0], [0.16666666666666666, 0.3333333333333333, 0.16666666666666666])
    >>> [round(float(a), 4) for a in alphas_and_weights("gausslegendre", 2)[0]]
    [0.2113, 0.7887]
    """
    alphas, weights = _rule(rule, check_path_steps(steps, rule))
    return list(alphas), list(weights)


@functools.lru_cache(maxsize=64)
def _rule(rule: str, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if rule == "gausslegendre":
        nodes, weights = gauss_legendre(n)
        return tuple((0.5 * (1 + nodes)).tolist()), tuple((0.5 * weights).tolist())
    weights = [1 / n] * n
    if rule == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        alphas = torch.linspace(0, 1, n)
    elif rule == "riemann_left":
        alphas = torch.linspace(0, 1 - 1 / n, n)
    elif rule == "riemann_middle":
        alphas = torch.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    else:  # riemann_right
        alphas = torch.linspace(1 / n, 1, n)
    return tuple(alphas.tolist()), tuple(weights)


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes (ascending, in [-1, 1]) and weights of ``n`` points.

    numpy's ``leggauss`` for small ``n``; above, Newton's method from Tricomi's initial
    guesses on the positive half of the nodes, the Legendre polynomials evaluated by
    their three-term recurrence for all nodes at once (``leggauss`` solves an
    eigenvalue problem, O(n^3): 15 s at n = 2000).

    Examples
    --------
    >>> x, w = gauss_legendre(300)
    >>> bool(abs(w.sum() - 2) < 1e-13), bool(abs((w * x**4).sum() - 0.4) < 1e-13)
    (True, True)
    """
    if n <= _NUMPY_GAUSS:
        return np.polynomial.legendre.leggauss(n)
    half = (n + 1) // 2
    k = np.arange(1, half + 1)
    x = np.cos(np.pi * (k - 0.25) / (n + 0.5))  # the nodes in (0, 1], descending
    for _ in range(10):  # quadratic convergence: 3 to 4 iterations suffice
        p, dp = _legendre(n, x)
        step = p / dp
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    _, dp = _legendre(n, x)
    w = 2 / ((1 - x * x) * dp * dp)
    if n % 2:  # the middle node is exactly 0
        x[-1] = 0.0
    nodes = np.concatenate([-x, x[::-1][n % 2 :]])
    weights = np.concatenate([w, w[::-1][n % 2 :]])
    return nodes, weights * (2 / weights.sum())


def _legendre(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``P_n(x)`` and ``P_n'(x)`` by the three-term recurrence."""
    p0, p1 = np.ones_like(x), x.copy()
    for j in range(2, n + 1):
        p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
    return p1, n * (x * p1 - p0) / (x * x - 1)


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

"""Layer attributions along an input path: conductance and internal influence (Captum's).

The inputs follow a path ``x0 + alpha_s (x - x0)``; at each step the layer's activation
``a_s`` and the gradient ``g_s`` of the target with respect to it are recorded (one
forward over all steps, one batched backward). Rows are step-major, ``s * N + n``.

- Internal influence: ``sum_s w_s g_s``, the step weights ``w_s`` of the integration rule
  (:func:`~algebra.kernels.paths.integrate` of the layer gradients).
- Conductance: ``sum_{s < S} g_s (a_{s+1} - a_s)`` over ``S + 1`` points whose alphas are
  the rule's alphas for ``S + 1`` steps (Captum's LayerConductance ignores the weights).
"""

from __future__ import annotations

import torch

from .paths import alphas_and_weights, integrate


def conductance_alphas(rule: str, steps: int) -> list[float]:
    """The ``steps + 1`` path points of conductance with ``steps`` steps, by ``rule``.

    Examples
    --------
    >>> conductance_alphas("riemann_trapezoid", 2)
    [0.0, 0.5, 1.0]
    """
    return alphas_and_weights(rule, steps + 1)[0]


def conductance(grads: torch.Tensor, acts: torch.Tensor, n: int) -> torch.Tensor:
    """Layer conductance ``[T, N, ...]`` from gradients ``[T, (S+1) N, ...]`` and activations.

    ``acts`` ``[(S+1) N, ...]`` are the layer's activations at the same step-major points
    (the alphas of :func:`conductance_alphas`); ``n`` is the number of samples.

    Examples
    --------
    >>> acts = torch.tensor([[0.0], [1.0], [3.0]])          # S + 1 = 3 points, N = 1
    >>> grads = torch.tensor([[[2.0], [1.0], [5.0]]])
    >>> conductance(grads, acts, 1)                         # 2 * (1 - 0) + 1 * (3 - 1)
    tensor([[[4.]]])
    """
    points = acts.shape[0] // n
    if points < 2 or points * n != acts.shape[0] or grads.shape[1] != acts.shape[0]:
        raise ValueError(
            f"conductance: expected step-major activations [(S+1) * {n}, ...] and gradients "
            f"[T, (S+1) * {n}, ...] with S >= 1; got {list(acts.shape)} and {list(grads.shape)}"
        )
    a = acts.reshape(points, n, *acts.shape[1:])
    g = grads.reshape(grads.shape[0], points, n, *grads.shape[2:])
    return (g[:, :-1] * (a[1:] - a[:-1])).sum(1)


def internal_influence(grads: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Internal influence ``[T, N, ...]``: layer gradients ``[T, S N, ...]`` summed with ``weights``.

    Examples
    --------
    >>> internal_influence(torch.ones(1, 4, 2), torch.tensor([0.25, 0.75]))
    tensor([[[1., 1.],
             [1., 1.]]])
    """
    return integrate(grads, weights)

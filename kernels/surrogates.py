"""Surrogate fits of KernelSHAP and LIME: batched weighted least squares on the device.

Both fit a linear model of the coalition (a binary vector over players) to the target
scores, for every sample and target at once, by solving the normal equations in float64
with a tiny ridge. KernelSHAP's coalitions are drawn in proportion to the Shapley kernel,
so they weigh equally; its model is pinned to ``f(baseline)`` at the empty coalition and
its values to sum to ``f(x) - f(baseline)`` (a Lagrange constraint), which makes it
converge to the Shapley values. LIME fits an intercept and weighs each copy by an
exponential kernel of its distance to the input.
"""

from __future__ import annotations

import torch

from .coalitions import Design
from .perturb import baseline_tensor
from .players import player_sums

RIDGE = 1e-10  # relative to the mean diagonal of the normal equations


def kernel_shap_values(scores: torch.Tensor, design: Design) -> torch.Tensor:
    """KernelSHAP values ``[T, N, P]`` from scores ``[T, N, K]`` (empty, full, then drawn).

    Examples
    --------
    >>> from algebra.kernels.coalitions import kernel_shap_design
    >>> from algebra.kernels.players import every_feature
    >>> d = kernel_shap_design(every_feature((1, 3)), samples=50, seed=0)
    >>> s = d.keep.double() @ torch.tensor([1.0, -2.0, 3.0], dtype=torch.double)
    >>> kernel_shap_values(s[None, None], d).round(decimals=6)
    tensor([[[ 1., -2.,  3.]]], dtype=torch.float64)
    """
    t, n, _ = scores.shape
    p = design.players.count
    z = design.keep[2:].to(device=scores.device, dtype=torch.float64)
    s = scores.double()
    y = s[..., 2:] - s[..., :1]
    gram = z.T @ z
    gram = gram + _ridge(gram)
    ones = torch.ones(p, 1, dtype=torch.float64, device=scores.device)
    corner = torch.zeros(1, 1, dtype=torch.float64, device=scores.device)
    system = torch.cat([torch.cat([gram, ones], 1), torch.cat([ones.T, corner], 1)])
    rhs = torch.cat([y @ z, s[..., 1:2] - s[..., :1]], dim=2)
    solution = torch.linalg.solve(system, rhs.reshape(-1, p + 1).T).T
    return solution[:, :p].reshape(t, n, p).to(scores.dtype)


def lime_weights(
    design: Design, x: torch.Tensor, baseline: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """Similarity weights ``[N, K]``: ``exp(-d**2 / (2 kernel_width**2))`` per copy.

    ``d`` is the design's distance between each input and its copy in input space (as
    Captum's default kernel): ``"cosine"`` (1 - cosine similarity) or ``"euclidean"``.
    Computed from per-player sums, never from the copies themselves.

    Examples
    --------
    >>> from algebra.kernels.coalitions import lime_design
    >>> from algebra.kernels.players import every_feature
    >>> d = lime_design(every_feature((1, 2)), samples=3, seed=1, distance="euclidean")
    >>> d.keep.int().tolist()
    [[0, 1], [1, 0], [1, 0]]
    >>> lime_weights(d, torch.tensor([[3.0, 4.0]]))  # exp(-3**2 / 2), exp(-4**2 / 2), ...
    tensor([[0.0111, 0.0003, 0.0003]], dtype=torch.float64)
    """
    assert design.kernel_width is not None
    x = x.double()
    b = baseline_tensor(baseline, x).expand_as(x)
    parts = torch.stack([x * x, x * b, b * b, (x - b) ** 2])
    per_player = player_sums(parts, design.players)  # [4, N, P]
    totals = parts.flatten(2).sum(2)  # [4, N]
    z = design.keep.to(device=x.device, dtype=torch.float64)
    kept = z @ per_player[0].T  # [K, N]
    if design.distance == "euclidean":
        squared = (1 - z) @ per_player[3].T
    else:
        outside = totals[0] - per_player[0].sum(1)  # features that are no player stay
        dot = kept + (1 - z) @ per_player[1].T + outside
        norm = kept + (1 - z) @ per_player[2].T + outside
        eps = torch.tensor(1e-8, dtype=torch.float64, device=x.device)
        cosine = dot / (totals[0].sqrt().clamp(min=eps) * norm.sqrt().clamp(min=eps))
        squared = (1 - cosine) ** 2
    return torch.exp(-squared / (2 * design.kernel_width**2)).T


def lime_values(
    scores: torch.Tensor,
    design: Design,
    x: torch.Tensor,
    baseline: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """LIME coefficients ``[T, N, P]``: a weighted linear fit with an intercept per sample.

    Examples
    --------
    >>> from algebra.kernels.coalitions import lime_design
    >>> from algebra.kernels.players import every_feature
    >>> d = lime_design(every_feature((1, 3)), samples=40, seed=0)
    >>> s = 0.5 + d.keep.double() @ torch.tensor([1.0, -2.0, 3.0], dtype=torch.double)
    >>> lime_values(s[None, None], d, torch.ones(1, 3)).round(decimals=6)
    tensor([[[ 1., -2.,  3.]]], dtype=torch.float64)
    """
    k = scores.shape[2]
    z = design.keep.to(device=scores.device, dtype=torch.float64)
    z = torch.cat([torch.ones(k, 1, dtype=torch.float64, device=z.device), z], dim=1)
    w = lime_weights(design, x.to(scores.device), baseline)  # [N, K]
    weighted = z[None] * w[:, :, None]  # [N, K, P + 1]
    gram = weighted.transpose(1, 2) @ z  # [N, P + 1, P + 1]
    gram = gram + _ridge(gram)
    rhs = weighted.transpose(1, 2) @ scores.double().permute(1, 2, 0)  # [N, P + 1, T]
    solution = torch.linalg.solve(gram, rhs)
    return solution[:, 1:, :].permute(2, 0, 1).to(scores.dtype)


def _ridge(gram: torch.Tensor) -> torch.Tensor:
    size = gram.shape[-1]
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp(min=1.0)
    eye = torch.eye(size, dtype=gram.dtype, device=gram.device)
    return RIDGE * scale[..., None, None] * eye

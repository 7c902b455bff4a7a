"""Estimators: from the stream's logits to per-player attributions ``[T, N, P]``.

Targets are gathered from the logits of all classes after the stream (``scores``), so each
estimator works on scores ``[T, N, K]`` of one design's ``K`` coalitions, batched over
targets and samples. :func:`~algebra.kernels.players.spread` puts the results at input
resolution.
"""

from __future__ import annotations

import torch

from .coalitions import Design
from .surrogates import kernel_shap_values, lime_values


def scores(logits: torch.Tensor, index: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Target scores ``[T, N, K]`` of a design's coalitions, from logits ``[N, U, C]``.

    ``index`` ``[K]`` maps the design's coalitions to the unique copies; ``targets``
    ``[T, N]`` holds each sample's classes.

    Examples
    --------
    >>> logits = torch.arange(12.0).reshape(2, 2, 3)
    >>> scores(logits, torch.tensor([1, 0, 1]), torch.tensor([[0, 2]]))
    tensor([[[ 3.,  0.,  3.],
             [11.,  8., 11.]]])
    """
    picked = logits[:, index.to(logits.device), :]
    n, k, _ = picked.shape
    t = targets.shape[0]
    classes = targets.to(logits.device).T[:, None, :].expand(n, k, t)
    return picked.gather(2, classes).permute(2, 0, 1)


def sampled_shapley_values(scores: torch.Tensor, design: Design) -> torch.Tensor:
    """Shapley values by permutation sampling: marginal contributions averaged.

    Player ``orders[s, j]`` joins the prefix of permutation ``s`` at step ``j``; its
    contribution is the score after minus the score before. The values of each sample and
    target sum to ``f(x) - f(baseline)`` exactly.

    Examples
    --------
    >>> from algebra.kernels.coalitions import shapley_design
    >>> from algebra.kernels.players import every_feature
    >>> d = shapley_design(every_feature((1, 3)), samples=4, seed=0)
    >>> s = d.keep.double() @ torch.tensor([1.0, 2.0, 3.0], dtype=torch.double)
    >>> sampled_shapley_values(s[None, None], d)
    tensor([[[1., 2., 3.]]], dtype=torch.float64)
    """
    assert design.orders is not None
    t, n, _ = scores.shape
    steps, p = design.orders.shape
    chain = scores.reshape(t, n, steps, p + 1)
    gains = chain[..., 1:] - chain[..., :-1]
    orders = design.orders.to(scores.device).expand(t, n, steps, p)
    return torch.zeros_like(gains).scatter_(3, orders, gains).mean(2)


def exact_shapley_values(scores: torch.Tensor, design: Design) -> torch.Tensor:
    """Exact Shapley values: ``scores @ weights`` over all ``2**P`` coalitions.

    Examples
    --------
    >>> from algebra.kernels.coalitions import exact_design
    >>> from algebra.kernels.players import every_feature
    >>> d = exact_design(every_feature((1, 2)))
    >>> s = torch.tensor([0.0, 1.0, 2.0, 5.0])  # f(empty), f({0}), f({1}), f(both)
    >>> exact_shapley_values(s[None, None], d)
    tensor([[[2., 3.]]])
    """
    assert design.weights is not None
    weights = design.weights.to(scores.device)
    return (scores.double() @ weights).to(scores.dtype)


def ablation_values(scores: torch.Tensor, design: Design) -> torch.Tensor:
    """``f(x) - f(x with the player removed)``, for feature ablation and feature permutation.

    Examples
    --------
    >>> ablation_values(torch.tensor([[[5.0, 4.0, 1.0]]]), None)
    tensor([[[1., 4.]]])
    """
    return scores[..., :1] - scores[..., 1:]


def occlusion_values(scores: torch.Tensor, design: Design) -> torch.Tensor:
    """Each window's score drop, averaged over the windows covering each player (as Captum).

    Examples
    --------
    >>> from algebra.kernels.occlusion import occlusion_design
    >>> d = occlusion_design((1, 3), size=2, stride=1)
    >>> occlusion_values(torch.tensor([[[5.0, 3.0, 1.0]]]), d)
    tensor([[[2., 3., 4.]]])
    """
    assert design.cover is not None
    cover = design.cover.to(device=scores.device, dtype=scores.dtype)
    drops = scores[..., :1] - scores[..., 1:]
    return (drops @ cover) / cover.sum(0)


def attribute(
    design: Design,
    scores: torch.Tensor,
    x: torch.Tensor | None = None,
    baseline: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Per-player attributions ``[T, N, P]`` of ``design`` from its scores ``[T, N, K]``.

    LIME needs the inputs ``x`` and the ``baseline`` for its similarity kernel.

    Examples
    --------
    >>> from algebra.kernels.coalitions import ablation_design
    >>> from algebra.kernels.players import every_feature
    >>> attribute(ablation_design(every_feature((1, 2))), torch.tensor([[[3.0, 1.0, 2.0]]]))
    tensor([[[2., 1.]]])
    """
    method = design.method
    if method == "shapley":
        if design.orders is not None:
            return sampled_shapley_values(scores, design)
        return exact_shapley_values(scores, design)
    if method in ("feature_ablation", "feature_permutation"):
        return ablation_values(scores, design)
    if method == "occlusion":
        return occlusion_values(scores, design)
    if method == "kernel_shap":
        return kernel_shap_values(scores, design)
    if method == "lime":
        if x is None:
            raise ValueError("x: LIME weighs copies by their distance to the inputs; pass x")
        return lime_values(scores, design, x, baseline)
    raise ValueError(f"design: no estimator for method {method!r}")

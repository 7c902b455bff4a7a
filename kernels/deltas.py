"""Completeness: Captum's convergence delta from quantities a pass already has.

``delta = sum(attribution) - (f(x) - f(x0))``: how far the attribution is from explaining
the change of the target's score between the reference ``x0`` and the input ``x``. The
scores come from forwards the methods run anyway: the inputs' logits, a paired DeepLift
batch (both halves), the baselines' logits (one row per baseline, not per sample).
"""

from __future__ import annotations

import torch


def target_scores(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Each target's score ``[T, N]``: ``logits[n, rows[t, n]]``; ``logits`` ``[N or 1, C]``.

    Examples
    --------
    >>> target_scores(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1, 0]]))
    tensor([[2., 3.]])
    """
    n = rows.shape[1]
    full = logits.expand(n, logits.shape[-1])
    return full.gather(1, rows.T.to(full.device)).T


def drawn_scores(
    baseline_logits: torch.Tensor, rows: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Scores ``[T, S, N]`` of the baselines drawn by ``index`` ``[S, N]`` (GradientSHAP).

    ``baseline_logits`` ``[B, C]`` come from one forward over the ``B`` baselines.

    Examples
    --------
    >>> logits = torch.tensor([[0.0, 1.0], [10.0, 20.0]])        # B=2, C=2
    >>> drawn_scores(logits, torch.tensor([[1, 0]]), torch.tensor([[1, 0], [0, 1]]))
    tensor([[[20.,  0.],
             [ 1., 10.]]])
    """
    drawn = baseline_logits[index]  # [S, N, C]
    s, n = index.shape
    t = rows.shape[0]
    gather = rows[:, None, :, None].expand(t, s, n, 1).to(drawn.device)
    return drawn[None].expand(t, s, n, drawn.shape[-1]).gather(3, gather)[..., 0]


def convergence_delta(
    attributions: torch.Tensor, end_scores: torch.Tensor, start_scores: torch.Tensor
) -> torch.Tensor:
    """``sum(attribution) - (end - start)`` per leading index: ``[T, N, ...] -> [T, N]``.

    ``end_scores`` and ``start_scores`` broadcast to the attributions' leading dims (the
    dims before the features: ``[T, N]``, or ``[T, S, N]`` per GradientSHAP draw); the
    features are the remaining dims of ``attributions``.

    Examples
    --------
    >>> attr = torch.tensor([[[0.5, 0.25], [1.0, 1.0]]])          # T=1, N=2, 2 features
    >>> convergence_delta(attr, torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 0.0]]))
    tensor([[-0.2500, -1.0000]])
    """
    lead = torch.broadcast_shapes(end_scores.shape, start_scores.shape)
    total = attributions.reshape(*attributions.shape[: len(lead)], -1).sum(-1)
    return total - (end_scores - start_scores)

"""Accuracy of a linear decision layer on cached features: overall, per class, per group."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class Accuracy:
    """Accuracies in [0, 1]. ``per_class [C]`` is NaN for a class absent from the data;
    ``per_group`` maps each group id present to its accuracy (empty without groups)."""

    overall: float
    per_class: torch.Tensor
    per_group: dict[int, float] = field(default_factory=dict)

    @property
    def worst_class(self) -> float:
        """The lowest accuracy over the classes present.

        Examples
        --------
        >>> Accuracy(0.5, torch.tensor([1.0, float("nan"), 0.25])).worst_class
        0.25
        """
        return float(self.per_class.nan_to_num(float("inf")).min())

    @property
    def worst_group(self) -> float | None:
        """The lowest group accuracy, or ``None`` without groups.

        Examples
        --------
        >>> Accuracy(0.5, torch.tensor([0.5]), {0: 0.75, 1: 0.25}).worst_group
        0.25
        """
        return min(self.per_group.values()) if self.per_group else None


def accuracy(
    weight: torch.Tensor,
    bias: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor | None = None,
) -> Accuracy:
    """Accuracy of ``argmax(W z + b)`` against ``labels``, per class and per group.

    Examples
    --------
    >>> acc = accuracy(torch.eye(2), torch.zeros(2), torch.tensor([[1.0, 0], [1, 0], [0, 1]]),
    ...                torch.tensor([0, 1, 1]), groups=torch.tensor([0, 0, 1]))
    >>> acc.overall, acc.per_class.tolist(), acc.per_group
    (0.6666666666666666, [1.0, 0.5], {0: 0.5, 1: 1.0})
    """
    if len(labels) != len(features):
        raise ValueError(
            f"labels: {len(labels)} labels for {len(features)} samples; they must match"
        )
    with torch.no_grad():
        right = (nn.functional.linear(features, weight, bias).argmax(1) == labels).float()
    classes = weight.shape[0]
    count = torch.bincount(labels, minlength=classes).float()
    hits = torch.bincount(labels, weights=right, minlength=classes)
    per_class = torch.where(count > 0, hits / count.clamp(min=1), torch.full_like(count, torch.nan))
    per_group: dict[int, float] = {}
    if groups is not None:
        groups = torch.as_tensor(groups, device=labels.device).long()
        if groups.shape != labels.shape:
            raise ValueError(
                f"groups: expected one group id per sample, shape {tuple(labels.shape)}; "
                f"got {tuple(groups.shape)}"
            )
        ids, inverse = groups.unique(return_inverse=True)
        g_hits = torch.zeros(len(ids), device=labels.device).index_add_(0, inverse, right)
        g_count = torch.bincount(inverse, minlength=len(ids)).float()
        per_group = {
            int(i): float(h) / float(n) for i, h, n in zip(ids, g_hits, g_count, strict=True)
        }
    return Accuracy(float(right.sum()) / len(right), per_class.cpu(), per_group)

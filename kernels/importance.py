"""Neuron importance for a class: how much the class probability drops when a neuron is zeroed."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .batches import first_inputs
from .decision import check_class, decision_features, find_decision


def importance_from_mean(
    mean: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cls: int
) -> torch.Tensor:
    """imp_j = p_c(z̄) / p_c(z̄ with z_j = 0) for every neuron j at once.

    Zeroing z_j changes the logits by ``-W[:, j] z̄_j``, so all D masked copies are the
    rows of one ``[D, C]`` tensor: no ``D x D`` copy of the features is built.
    imp_j > 1 means the neuron supports class ``cls`` at the mean feature.

    Examples
    --------
    >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> importance_from_mean(torch.tensor([2.0, 0.0]), w, torch.zeros(2), 0)
    tensor([1.7616, 1.0000])
    """
    cls = check_class(cls, weight.shape[0])
    if mean.ndim != 1 or mean.shape[0] != weight.shape[1]:
        raise ValueError(
            f"mean: expected a mean feature of shape ({weight.shape[1]},); got {tuple(mean.shape)}"
        )
    logits = nn.functional.linear(mean, weight, bias)
    masked = logits[None, :] - mean[:, None] * weight.T
    log_p = torch.log_softmax(logits, 0)[cls]
    log_masked = torch.log_softmax(masked, 1)[:, cls]
    return torch.exp(log_p - log_masked)  # a ratio of probabilities, kept finite in log space


def neuron_importance(
    module: nn.Module,
    data: Any,
    cls: int,
    *,
    layer: str | None = None,
    head: str | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Importance ``[D]`` of every decision neuron for class ``cls``, z̄ the mean pooled
    feature over ``data`` (inputs, an ``(inputs, labels)`` pair, or batches of them).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    >>> neuron_importance(net, torch.rand(10, 3), 1).shape
    torch.Size([4])
    """
    decision = find_decision(module, first_inputs(data), layer, head)
    cls = check_class(cls, decision.classes)
    z, _ = decision_features(module, decision, data, batch_size)
    return importance_from_mean(z.mean(0), decision.weight, decision.bias, cls)

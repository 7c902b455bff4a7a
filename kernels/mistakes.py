"""One forward that gives a model's logits and its pooled decision features, and the
mistakes of a class among the samples a mask keeps."""

from __future__ import annotations

import torch
from torch import nn

from .decision import Decision, feature_hook
from .guard import guarded

#: Rows per forward of :func:`decision_pass` (the features are small; the forward is not).
BATCH = 256


def decision_pass(
    module: nn.Module, decision: Decision, inputs: torch.Tensor, batch_size: int = BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C]`` and pooled decision features ``[N, D]`` of ``inputs``, in eval
    mode and without gradients, ``batch_size`` rows per forward, on the model's device.

    The module's modes and flags come back as they were, and no hook outlives the call.

    Examples
    --------
    >>> from algebra.kernels.decision import find_decision
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 4)).eval()
    >>> x = torch.rand(5, 2)
    >>> logits, z = decision_pass(net, find_decision(net, x), x, batch_size=2)
    >>> logits.shape, z.shape, torch.allclose(logits, net(x))
    (torch.Size([5, 4]), torch.Size([5, 3]), True)
    """
    device = decision.weight.device
    outs: list[torch.Tensor] = []
    zs: list[torch.Tensor] = []
    with guarded(module), torch.no_grad(), feature_hook(module, decision) as got:
        for rows in torch.arange(len(inputs)).split(batch_size):
            out = module(inputs[rows].to(device))
            if not isinstance(out, torch.Tensor) or out.ndim != 2:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"module: expected logits [N, classes] from the model; got {shape}"
                )
            outs.append(out.detach())
            zs.append(got.pop().detach())
    if not outs:
        raise ValueError("inputs: no samples")
    return torch.cat(outs), torch.cat(zs)


def mistakes_of(
    pred: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, cls: int
) -> torch.Tensor:
    """Positions of the kept samples labelled ``cls`` and predicted otherwise.

    Examples
    --------
    >>> mistakes_of(torch.tensor([1, 0, 2, 1]), torch.tensor([1, 1, 1, 1]),
    ...             torch.tensor([True, True, True, False]), 1)
    tensor([1, 2])
    """
    return torch.nonzero(keep & (labels == cls) & (pred != cls)).flatten()

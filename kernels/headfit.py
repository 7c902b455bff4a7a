"""Retrain a linear decision layer on cached features, optionally with the retaining-ratio term.

The retaining ratio of a sample is how much of its class-c probability survives when the
selected neurons are masked: r(z) = p_c(Wz+b) / (p_c(W(z⊙m)+b) + 1e-9). Pulling r towards
a target o close to 1 makes the prediction of c rely less on those neurons. The loss is
CE(Wz+b, y) + λ·‖(r(z_i) - o)_i‖₂ over each batch; with λ = 0 it is plain retraining,
the control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .accuracy import Accuracy, accuracy

SELECT = ("worst_class", "overall")
SCHEDULES = ("cosine", "constant")


def retaining_ratio(
    weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor, mask: torch.Tensor, cls: int
) -> torch.Tensor:
    """r(z) per sample ``[N]`` for features ``[N, D]`` and a 0/1 neuron ``mask [D]``.

    Examples
    --------
    >>> r = retaining_ratio(torch.eye(2), torch.zeros(2), torch.tensor([[2.0, 0.0]]),
    ...                     torch.tensor([0.0, 1.0]), 0)
    >>> round(float(r), 4)
    1.7616
    """
    p = torch.softmax(nn.functional.linear(features, weight, bias), 1)[:, cls]
    p_masked = torch.softmax(nn.functional.linear(features * mask, weight, bias), 1)[:, cls]
    return p / (p_masked + 1e-9)


def target_ratio(importance: torch.Tensor, neurons: torch.Tensor) -> float:
    """The reference's target o = (min_{j in S} imp_j - 1)/3 + 1.

    Examples
    --------
    >>> round(target_ratio(torch.tensor([1.6, 1.3, 0.9]), torch.tensor([0, 1])), 6)
    1.1
    """
    return (float(importance[neurons].min()) - 1.0) / 3.0 + 1.0


@dataclass(frozen=True)
class HeadFit:
    """A retrained head: the selected checkpoint's ``weight``, ``bias`` and ``epoch``
    (1-based), the validation ``history`` of every epoch run, and whether it stopped early."""

    weight: torch.Tensor
    bias: torch.Tensor
    epoch: int
    history: tuple[Accuracy, ...]
    stopped_early: bool


def fit_head(
    weight: torch.Tensor,
    bias: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    *,
    neurons: torch.Tensor,
    cls: int,
    ratio: float,
    lam: float = 0.01,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 64,
    select: str = "worst_class",
    schedule: str = "cosine",
    patience: int | None = 5,
    seed: int = 0,
) -> HeadFit:
    """Train copies of ``weight, bias`` with Adam on cached features; pick a checkpoint.

    ``schedule="cosine"`` anneals the learning rate once, per step, from ``lr`` to 0 over
    all ``epochs`` (no restart each epoch); ``"constant"`` keeps ``lr``. After every epoch
    the head is scored on the validation features, by the lowest per-class accuracy
    (``select="worst_class"``, ties broken by overall accuracy) or by overall accuracy;
    the best epoch is kept, and training stops after ``patience`` epochs without a gain.
    Shuffles are seeded, so two calls differing only in ``lam`` see the same batches.

    Examples
    --------
    >>> z, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    >>> fit = fit_head(torch.zeros(2, 3), torch.zeros(2), z, y, z, y, neurons=torch.tensor([0]),
    ...                cls=1, ratio=1.0, epochs=3)
    >>> fit.weight.shape, 1 <= fit.epoch <= 3, len(fit.history)
    (torch.Size([2, 3]), True, 3)
    """
    if select not in SELECT:
        raise ValueError(f"select: expected one of {SELECT}; got {select!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}; got {schedule!r}")
    w = weight.detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    mask = torch.ones(weight.shape[1], dtype=weight.dtype, device=weight.device)
    mask[neurons] = 0
    opt = torch.optim.Adam([w, b], lr=lr)
    per_epoch = math.ceil(len(features) / batch_size)
    total = epochs * per_epoch
    gen = torch.Generator().manual_seed(seed)
    best: tuple[tuple[float, float], torch.Tensor, torch.Tensor, int] | None = None
    history: list[Accuracy] = []
    stopped_early = False
    step = 0
    for epoch in range(1, epochs + 1):
        for rows in torch.randperm(len(features), generator=gen).split(batch_size):
            rows = rows.to(features.device)
            if schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            z, y = features[rows], labels[rows]
            with torch.enable_grad():
                loss = nn.functional.cross_entropy(nn.functional.linear(z, w, b), y)
                if lam:
                    r = retaining_ratio(w, b, z, mask, cls)
                    loss = loss + lam * torch.linalg.vector_norm(r - ratio)
                opt.zero_grad()
                loss.backward()
            opt.step()
            step += 1
        score = accuracy(w.detach(), b.detach(), val_features, val_labels)
        history.append(score)
        key = (
            (score.worst_class, score.overall) if select == "worst_class" else (score.overall, 0.0)
        )
        if best is None or key > best[0]:
            best = (key, w.detach().clone(), b.detach().clone(), epoch)
        elif patience is not None and epoch - best[3] >= patience:
            stopped_early = epoch < epochs
            break
    assert best is not None
    return HeadFit(best[1], best[2], best[3], tuple(history), stopped_early)

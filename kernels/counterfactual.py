"""Counterfactual neurons: the smallest feature change that turns each mistake into class c.

For every mistake of class c, an additive perturbation δ of the pooled decision features z
is optimised from 0 until the decision layer predicts c:

    min_δ CE(W(z + δ) + b, c) + l1·‖δ‖₁/D + l2·‖δ‖₂/D      (SGD with momentum)

All mistakes are optimised together in one batch; each row freezes at the first step where
it is predicted c, and no row takes more than ``max_steps`` steps. Each δ then votes: its
``top`` largest entries for neurons that were *insufficient* (had to grow), its ``top``
most negative entries for neurons that were *excessive* (had to shrink).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .batches import first_inputs
from .decision import Decision, check_class, decision_features, find_decision

KINDS = ("insufficient", "excessive")


@dataclass(frozen=True)
class Counterfactuals:
    """Per-mistake perturbations ``delta [M, D]``, whether each ``flipped [M]`` to the class
    within the step cap, and the optimiser ``steps [M]`` each took."""

    delta: torch.Tensor
    flipped: torch.Tensor
    steps: torch.Tensor


def counterfactual_deltas(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    cls: int,
    *,
    max_steps: int = 500,
    lr: float = 0.01,
    momentum: float = 0.9,
    l1: float = 0.1,
    l2: float = 0.01,
) -> Counterfactuals:
    """Optimise all rows of ``features [M, D]`` towards class ``cls`` in one batch.

    Rows are independent (the loss is a sum of per-row terms), so the batch gives exactly
    what one optimisation per row would. The momentum SGD is written out so that a frozen
    row keeps both its δ and its momentum: ``torch.optim.SGD`` would keep moving it.

    Examples
    --------
    >>> w, b = torch.eye(2), torch.zeros(2)
    >>> cf = counterfactual_deltas(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), w, b, 1, max_steps=200)
    >>> cf.flipped.tolist(), cf.steps[1].item()
    ([True, True], 0)
    >>> bool(cf.delta[0, 1] > 0 > cf.delta[0, 0])
    True
    """
    cls = check_class(cls, weight.shape[0])
    _positive_int(max_steps, "max_steps")
    for name, value in (("lr", lr), ("momentum", momentum), ("l1", l1), ("l2", l2)):
        if not (isinstance(value, (int, float)) and value >= 0) or (name == "lr" and value == 0):
            raise ValueError(
                f"{name}: expected a {'positive' if name == 'lr' else 'non-negative'} number; got {value!r}"
            )
    z = features.detach()
    m, d = z.shape
    target = torch.full((m,), cls, dtype=torch.long, device=z.device)
    delta = torch.zeros_like(z)
    velocity = torch.zeros_like(z)
    steps = torch.zeros(m, dtype=torch.long, device=z.device)
    done = torch.zeros(m, dtype=torch.bool, device=z.device)
    for step in range(max_steps + 1):
        with torch.no_grad():
            done |= nn.functional.linear(z + delta, weight, bias).argmax(1) == cls
        active = ~done
        if step == max_steps or not bool(active.any()):
            break
        leaf = delta.clone().requires_grad_(True)
        with torch.enable_grad():
            logits = nn.functional.linear(z + leaf, weight, bias)
            loss = (
                nn.functional.cross_entropy(logits, target, reduction="sum")
                + l1 * leaf.abs().sum() / d
                + l2 * torch.linalg.vector_norm(leaf, dim=1).sum() / d
            )
            (grad,) = torch.autograd.grad(loss, leaf)
        rows = active[:, None]
        velocity = torch.where(rows, momentum * velocity + grad, velocity)
        delta = torch.where(rows, delta - lr * velocity, delta)
        steps += active.long()
    return Counterfactuals(delta, done.clone(), steps)


@dataclass(frozen=True)
class Votes:
    """Votes per neuron and kind (:data:`KINDS`), as a percentage of the ``mistakes``.

    ``percent [D, 2]`` holds the raw shares; ``kept [D, 2]`` the same with every share at
    or below ``threshold`` percent set to 0 (the reference drops those neurons).
    """

    percent: torch.Tensor
    kept: torch.Tensor
    threshold: float
    mistakes: int

    def ranked(self, kind: str = "insufficient", limit: int = 30) -> torch.Tensor:
        """Neurons kept for ``kind``, most votes first (ties: lower index first), at most ``limit``.

        Examples
        --------
        >>> v = neuron_votes(torch.tensor([[0.0, 2.0, 1.0], [0.0, 1.0, 3.0]]), top=1)
        >>> v.ranked("insufficient").tolist()
        [1, 2]
        """
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}; got {kind!r}")
        share = self.kept[:, KINDS.index(kind)]
        order = torch.sort(-share, stable=True).indices
        return order[share[order] > 0][:limit]


def neuron_votes(delta: torch.Tensor, top: int = 5, threshold: float = 3.0) -> Votes:
    """Count the votes of perturbations ``delta [M, D]``.

    Each row's ``top`` largest entries vote *insufficient* and its ``top`` most negative
    entries vote *excessive*; an entry of the wrong sign (a top-5 entry that is not
    positive, say) casts no vote, since that neuron did not have to grow.

    Examples
    --------
    >>> v = neuron_votes(torch.tensor([[3.0, -1.0, 0.5], [2.0, 1.0, -4.0]]), top=1)
    >>> v.percent.tolist()
    [[100.0, 0.0], [0.0, 50.0], [0.0, 50.0]]
    """
    if delta.ndim != 2 or delta.shape[0] == 0:
        raise ValueError(
            f"delta: expected perturbations [M, D] with M > 0; got {tuple(delta.shape)}"
        )
    m, d = delta.shape
    top = _positive_int(top, "top")
    if top > d:
        raise ValueError(f"top: {top} votes per mistake, but there are only {d} neurons")
    counts = []
    for signed in (delta, -delta):
        values, index = signed.topk(top, dim=1)
        count = torch.zeros(d, dtype=delta.dtype, device=delta.device)
        counts.append(count.index_add_(0, index.flatten(), (values > 0).flatten().to(delta.dtype)))
    percent = 100.0 * torch.stack(counts, dim=1) / m
    kept = torch.where(percent > threshold, percent, torch.zeros_like(percent))
    return Votes(percent, kept, float(threshold), m)


@dataclass(frozen=True)
class CounterfactualNeurons:
    """Stage 1 for one class: the ``sample`` indices (into the data) of its mistakes, their
    perturbations, flips, steps and the neuron votes, with the ``decision`` split used."""

    cls: int
    sample: torch.Tensor
    delta: torch.Tensor
    flipped: torch.Tensor
    steps: torch.Tensor
    votes: Votes
    decision: Decision


def counterfactual_neurons(
    module: nn.Module,
    data: Any,
    cls: int,
    *,
    layer: str | None = None,
    head: str | None = None,
    top: int = 5,
    max_steps: int = 500,
    lr: float = 0.01,
    l1: float = 0.1,
    l2: float = 0.01,
    threshold: float = 3.0,
    batch_size: int = 256,
) -> CounterfactualNeurons:
    """Find the neurons behind the model's mistakes on class ``cls`` among labelled ``data``.

    ``data`` is an ``(inputs, labels)`` pair or an iterable of such batches. The mistakes
    are the samples labelled ``cls`` that the decision layer assigns to another class.

    Examples
    --------
    >>> torch.manual_seed(0) is not None
    True
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    >>> x = torch.randn(40, 4)
    >>> res = counterfactual_neurons(net, (x, torch.zeros(40, dtype=torch.long)), 0, top=2)
    >>> res.delta.shape[1], bool(res.flipped.all())
    (6, True)
    """
    x_first = first_inputs(data)
    decision = find_decision(module, x_first, layer, head)
    cls = check_class(cls, decision.classes)
    z, y = decision_features(module, decision, data, batch_size)
    if y is None:
        raise ValueError("data: labels are needed to find the mistakes; pass (inputs, labels)")
    predicted = decision.logits(z).argmax(1)
    of_class = y == cls
    mistakes = torch.nonzero(of_class & (predicted != cls)).flatten()
    if mistakes.numel() == 0:
        raise ValueError(
            f"cls: no mistakes for class {cls}: the data holds {int(of_class.sum())} sample(s) "
            f"of class {cls} and the model predicts all of them correctly"
        )
    cf = counterfactual_deltas(
        z[mistakes], decision.weight, decision.bias, cls, max_steps=max_steps, lr=lr, l1=l1, l2=l2
    )
    votes = neuron_votes(cf.delta, top=top, threshold=threshold)
    return CounterfactualNeurons(cls, mistakes, cf.delta, cf.flipped, cf.steps, votes, decision)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer; got {value!r}")
    return value

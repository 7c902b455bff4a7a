"""Counterfactual neurons, computed in a phase of their own.

One forward over the query's inputs (edits applied) gives the logits and the pooled
decision features; the query's ``where`` predicate and the labels give the mistakes of the
class; then every mistake's feature change is optimised in one batch on the model's
device (:func:`~algebra.kernels.counterfactual.counterfactual_deltas`), and the changes
vote (:func:`~algebra.kernels.counterfactual.neuron_votes`). Nothing here runs at
``explain()``: :func:`neuron_plan` describes the same steps from the node alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from ..ir.neurons import MOMENTUM, THRESHOLD, CounterfactualNeurons
from ..ir.views import Edit, source_of
from ..kernels.counterfactual import Counterfactuals, Votes, counterfactual_deltas, neuron_votes
from ..kernels.decision import PROBE_ROWS, Decision, check_class, find_decision
from ..kernels.edits import materialize
from ..kernels.mistakes import BATCH, decision_pass, mistakes_of
from ..kernels.outputs import selecting
from ..kernels.predicates import evaluate as holds
from ..optimizer.simplify import inputs_of
from ..results.neurons import counterfactual_dataset


@dataclass(frozen=True)
class Search:
    """What the phase found, on the model's device: the mistakes' ``positions`` in the
    query's batch, their ``labels`` and predictions ``pred``, the ``found``
    perturbations, the ``votes``, the ``decision`` split, and how many samples the query
    keeps (``kept``) of ``n``."""

    positions: torch.Tensor
    labels: torch.Tensor
    pred: torch.Tensor
    found: Counterfactuals
    votes: Votes
    decision: Decision
    kept: int
    n: int


def search(node: CounterfactualNeurons) -> Search:
    """Run the phase for one node: the forward, the mistakes, the batched optimisation.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> torch.manual_seed(0) is not None
    True
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
    >>> q = ia.model(net).on(torch.randn(30, 4), labels=[0] * 30)
    >>> found = search(q.counterfactual_neurons(0, top=2).node)
    >>> found.decision.head, found.votes.percent.shape, bool(found.found.flipped.all())
    ('2', torch.Size([6, 2]), True)
    """
    source = source_of(node.view)
    module = source.model.torch_module
    x = materialize(inputs_of(node.view))
    decision = find_decision(module, x, node.layer, node.head)
    cls = check_class(node.cls, decision.classes)
    if node.top > decision.neurons:
        raise ValueError(
            f"top: {node.top} votes per mistake, but the decision layer {decision.head!r} has "
            f"only {decision.neurons} neurons"
        )
    with selecting(module, source.model.scores):  # its scores, as ia.model(output=) reads
        logits, z = decision_pass(module, decision, x)
    device = logits.device
    labels = source.labels.value.to(device)  # type: ignore[union-attr]
    pred = logits.argmax(1)
    n = len(labels)
    keep = torch.ones(n, dtype=torch.bool, device=device)
    if node.where is not None:
        ids = np.asarray(source.ids) if source.ids is not None else np.arange(n)
        columns = {
            "pred": pred,
            "label": labels,
            "correct": pred == labels,
            "score": logits.float().softmax(1).amax(1),
            "id": ids,
        }
        keep = holds(node.where.lowered(source.model.classes), columns, n, device)
    positions = mistakes_of(pred, labels, keep, cls)
    if positions.numel() == 0:
        raise ValueError(_no_mistakes(cls, labels, pred, keep))
    found = counterfactual_deltas(
        z[positions],
        decision.weight,
        decision.bias,
        cls,
        max_steps=node.max_steps,
        lr=node.lr,
        momentum=MOMENTUM,
        l1=node.l1,
        l2=node.l2,
    )
    votes = neuron_votes(found.delta, top=node.top, threshold=THRESHOLD)
    return Search(
        positions, labels[positions], pred[positions], found, votes, decision, int(keep.sum()), n
    )


def neurons_dataset(node: CounterfactualNeurons) -> xr.Dataset:
    """The labelled result of a node: its phase, then the copy to the host.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> torch.manual_seed(0) is not None
    True
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
    >>> q = ia.model(net).on(torch.randn(30, 4), labels=[0] * 30)
    >>> sorted(neurons_dataset(q.counterfactual_neurons(0, top=2).node).data_vars)
    ['delta', 'flipped', 'steps', 'votes']
    """
    found = search(node)
    return counterfactual_dataset(
        node,
        found.positions,
        found.labels,
        found.pred,
        found.found,
        found.votes,
        found.decision,
        found.kept,
    )


def _no_mistakes(cls: int, labels: torch.Tensor, pred: torch.Tensor, keep: torch.Tensor) -> str:
    of_class = labels == cls
    count, wrong = int(of_class.sum()), int((of_class & (pred != cls)).sum())
    if count == 0:
        return f"cls: no mistakes for class {cls}: no sample is labelled {cls}"
    if wrong == 0:
        return (
            f"cls: no mistakes for class {cls}: the model predicts all {count} samples "
            f"labelled {cls} correctly"
        )
    return (
        f"cls: no mistakes for class {cls} among the {int(keep.sum())} samples the query keeps "
        f"(its where clause); all {wrong} of the batch are filtered out"
    )


def neuron_plan(node: CounterfactualNeurons) -> str:
    """The steps :func:`search` will take, for ``explain()``; runs nothing.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(300, 4), labels=[0] * 300)
    >>> print(neuron_plan(q.counterfactual_neurons(0, top=2).node))
    neurons: model 'lin' on inputs [300, 4]
      probe: 1 forward of 8 rows finds the decision layer (the last nn.Linear called) and checks the split
      forward inputs (300 rows in 2 chunks of at most 256; no gradients): logits, and the input of the last nn.Linear called as the decision features
      mistakes: samples labelled 0 and predicted otherwise
      optimise: every mistake's feature change together in one batch, momentum SGD (lr 0.01, l1 0.1, l2 0.01), at most 500 steps; each row stops at its first flip
      votes: top 2 per mistake, insufficient and excessive; shares at or below 3.0% dropped
    """
    source = source_of(node.view)
    n = source.n
    chunks = -(-n // BATCH)
    cut = f" in {chunks} chunks of at most {BATCH}" if chunks > 1 else ""
    edited = " (edited)" if isinstance(node.view, Edit) else ""
    if node.layer is not None:
        features = f"the pooled output of layer {node.layer!r}"
    elif node.head is not None:
        features = f"the input of the decision layer {node.head!r}"
    else:
        features = "the input of the last nn.Linear called"
    among = "" if node.where is None else f", among the samples where {node.where.to_query()}"
    head = "the last nn.Linear called" if node.head is None else repr(node.head)
    return "\n".join(
        [
            f"neurons: model {source.model.name!r} on inputs {list(source.shape)}{edited}",
            f"  probe: 1 forward of {min(PROBE_ROWS, n)} rows finds the decision layer ({head}) and "
            "checks the split",
            f"  forward inputs ({n} rows{cut}; no gradients): logits, and {features} as the "
            "decision features",
            f"  mistakes: samples labelled {node.cls} and predicted otherwise{among}",
            "  optimise: every mistake's feature change together in one batch, momentum SGD "
            f"(lr {node.lr}, l1 {node.l1}, l2 {node.l2}), at most {node.max_steps} steps; "
            "each row stops at its first flip",
            f"  votes: top {node.top} per mistake, insufficient and excessive; shares at or "
            f"below {THRESHOLD}% dropped",
        ]
    )

"""Labelled results of the neuron stages: counterfactual neurons (a ``Dataset``) and
neuron importance (a ``DataArray``), copied to the host here."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from ..ir.model import ModelInfo
from ..ir.neurons import KINDS, MOMENTUM, THRESHOLD, CounterfactualNeurons
from ..ir.views import source_of
from ..kernels.counterfactual import Counterfactuals, Votes
from ..kernels.decision import Decision
from .arrays import host

#: How many neurons of each kind the ``insufficient``/``excessive`` attributes rank.
SHOWN = 30


def class_attrs(model: ModelInfo, cls: int) -> dict[str, Any]:
    """``cls`` and, when the model has class names, ``class_name``.

    Examples
    --------
    >>> from algebra.ir.node import Ref
    >>> class_attrs(ModelInfo(Ref(None, "m"), "net", ("cat", "dog"), ()), 1)
    {'cls': 1, 'class_name': 'dog'}
    """
    attrs: dict[str, Any] = {"cls": int(cls)}
    if model.classes is not None and cls < len(model.classes):
        attrs["class_name"] = model.classes[cls]
    return attrs


def decision_attrs(decision: Decision) -> dict[str, Any]:
    """Where the decision features come from: ``layer`` (``""`` for the head's input) and
    ``head``.

    Examples
    --------
    >>> decision_attrs(Decision("fc", None, torch.zeros(2, 3), torch.zeros(2)))
    {'layer': '', 'head': 'fc'}
    """
    return {"layer": decision.layer or "", "head": decision.head}


def counterfactual_dataset(
    node: CounterfactualNeurons,
    positions: torch.Tensor,
    labels: torch.Tensor,
    pred: torch.Tensor,
    found: Counterfactuals,
    votes: Votes,
    decision: Decision,
    kept: int,
) -> xr.Dataset:
    """The ``Dataset`` of counterfactual neurons: ``votes [neuron, kind]`` in percent of the
    mistakes (shares at or below the threshold set to 0), ``delta [sample, neuron]``,
    ``flipped [sample]`` and ``steps [sample]``; the samples are the mistakes, labelled by
    the query's ids, with their ``label``, ``pred`` and ``position`` in the query's batch.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.kernels.counterfactual import counterfactual_deltas, neuron_votes
    >>> q = ia.model(torch.nn.Linear(3, 2).eval()).on(torch.rand(4, 3), labels=[1, 1, 0, 1])
    >>> node = q.counterfactual_neurons(1, top=1).node
    >>> found = counterfactual_deltas(torch.rand(2, 3), torch.eye(2, 3), torch.zeros(2), 1)
    >>> d = Decision("0", None, torch.eye(2, 3), torch.zeros(2))
    >>> ds = counterfactual_dataset(node, torch.tensor([0, 3]), torch.tensor([1, 1]),
    ...                             torch.tensor([0, 0]), found, neuron_votes(found.delta, 1), d, 4)
    >>> ds.votes.dims, ds.delta.dims, ds.sample.values.tolist()
    (('neuron', 'kind'), ('sample', 'neuron'), [0, 3])
    """
    source = source_of(node.view)
    place = host(positions)
    ids = np.asarray(source.ids)[place] if source.ids is not None else place
    mistakes = len(place)
    flipped = host(found.flipped)
    attrs: dict[str, Any] = {
        "method": "counterfactual_neurons",
        "model": source.model.name,
        **class_attrs(source.model, node.cls),
        **decision_attrs(decision),
        "top": node.top,
        "max_steps": node.max_steps,
        "lr": node.lr,
        "momentum": MOMENTUM,
        "l1": node.l1,
        "l2": node.l2,
        "threshold": THRESHOLD,
        "where": node.where.to_query() if node.where is not None else "",
        "samples": source.n,
        "kept": kept,
        "mistakes": mistakes,
        "flipped_percent": 100.0 * float(flipped.mean()),
        "insufficient": host(votes.ranked("insufficient", SHOWN)).tolist(),
        "excessive": host(votes.ranked("excessive", SHOWN)).tolist(),
    }
    votes_attrs = {"units": "percent of mistakes", "threshold": THRESHOLD}
    return xr.Dataset(
        {
            "votes": (("neuron", "kind"), host(votes.kept), votes_attrs),
            "delta": (("sample", "neuron"), host(found.delta)),
            "flipped": (("sample",), flipped),
            "steps": (("sample",), host(found.steps)),
        },
        coords={
            "neuron": np.arange(decision.neurons),
            "kind": list(KINDS),
            "sample": ids,
            "label": ("sample", host(labels)),
            "pred": ("sample", host(pred)),
            "position": ("sample", place),
        },
        attrs=attrs,
    )


def importance_array(
    values: torch.Tensor, model: ModelInfo, cls: int, decision: Decision, samples: int
) -> xr.DataArray:
    """Neuron importance ``[neuron]`` for class ``cls``, with where it was measured.

    Examples
    --------
    >>> from algebra.ir.node import Ref
    >>> info = ModelInfo(Ref(None, "m"), "net", None, ())
    >>> d = Decision("fc", "block", torch.zeros(2, 3), torch.zeros(2))
    >>> a = importance_array(torch.tensor([1.5, 1.0, 0.5]), info, 1, d, 10)
    >>> a.dims, a.name, a.attrs["layer"]
    (('neuron',), 'neuron_importance', 'block')
    """
    attrs = {
        "method": "neuron_importance",
        "model": model.name,
        **class_attrs(model, cls),
        **decision_attrs(decision),
        "samples": samples,
        "meaning": "p_c(mean feature) / p_c(mean feature with the neuron zeroed); > 1 supports c",
    }
    return xr.DataArray(
        host(values),
        dims=("neuron",),
        coords={"neuron": np.arange(len(values))},
        name="neuron_importance",
        attrs=attrs,
    )

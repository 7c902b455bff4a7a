"""The lazy half of NeuroInspect on a query: ``q.mistakes`` and ``q.counterfactual_neurons``.

Mixed into :class:`~algebra.api.query.Query`. ``mistakes`` is a sample filter like
``where``; ``counterfactual_neurons`` builds a
:class:`~algebra.ir.neurons.CounterfactualNeurons` node, computed through ``ia.compute`` in
a phase of its own (one forward, then every mistake optimised in one batch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from ..ir.columns import Predicate
from ..ir.neurons import CounterfactualNeurons, check_class_index, mistakes_predicate
from ..ir.node import Node
from ..ir.views import base_of, layer_of, source_of, window_of
from .dataset_expr import DatasetExpr
from .running import check_hookable

if TYPE_CHECKING:
    from .query import Query


class NeuronMethods:
    """``mistakes`` and ``counterfactual_neurons``, mixed into ``Query``."""

    node: Node
    filters: tuple[Predicate, ...]
    where: Any  # Query.where

    def mistakes(self, cls: int | str | None = None) -> Query:
        """Keep the misclassified samples (of true class ``cls`` when given); lazy.

        The same as ``q.where(ia.col.pred != ia.col.label)``, and with a class
        ``q.where((ia.col.label == cls) & (ia.col.pred != ia.col.label))``.

        Parameters
        ----------
        cls : int or str, optional
            A class index, or a class name of the model.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4), labels=[0, 1, 2, 0, 1, 2])
        >>> q.mistakes(2)
        Query(Linear on inputs [6, 4] where label = 2 and pred != label)
        >>> r = q.mistakes().saliency("pred").compute()
        >>> bool((r.pred != r.label).all())
        True
        >>> ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4)).mistakes()
        Traceback (most recent call last):
        ValueError: labels: mistakes compare predictions with labels; pass labels= to model.on(...)
        """
        source = source_of(self.node)
        if source.labels is None:
            raise ValueError(
                "labels: mistakes compare predictions with labels; pass labels= to model.on(...)"
            )
        index = None if cls is None else check_class_index(cls, source.model)
        return self.where(mistakes_predicate(index))

    def counterfactual_neurons(
        self,
        cls: int | str,
        layer: str | None = None,
        head: str | None = None,
        top: int = 5,
        max_steps: int = 500,
        lr: float = 0.01,
        l1: float = 0.1,
        l2: float = 0.01,
    ) -> DatasetExpr:
        """The neurons behind the model's mistakes on class ``cls`` (NeuroInspect, stage 1); lazy.

        For every mistake of class ``cls`` among the query's samples (its ``where``
        filters apply), the smallest additive change δ of the pooled decision features
        that makes the decision layer predict ``cls``::

            min_δ CE(W(z + δ) + b, cls) + l1·‖δ‖₁/D + l2·‖δ‖₂/D   (SGD, momentum 0.9)

        All mistakes are optimised together in one batch on the model's device; each stops
        at its first flip, none after ``max_steps`` steps. Each δ's ``top`` largest entries
        vote *insufficient* (the neuron had to grow), its ``top`` most negative entries
        *excessive*. Nothing runs until the expression is computed.

        Parameters
        ----------
        cls : int or str
            The true class whose mistakes are explained (an index or a class name).
        layer : str, optional
            The feature layer, its output mean-pooled over space; by default the layer the
            query selected (``q.layer(...)``), else the input of the decision layer.
        head : str, optional
            The ``nn.Linear`` decision layer, when it is not the last one called.
        top : int, default 5
            Votes per mistake and kind.
        max_steps : int, default 500
            The cap on optimiser steps.
        lr, l1, l2 : float
            Learning rate, and the weights of the L1 and L2 penalties on δ.

        Returns
        -------
        DatasetExpr
            Computes to an ``xarray.Dataset``: ``votes [neuron, kind]`` (kind
            ``insufficient``, ``excessive``; percent of the mistakes, shares at or below 3 %
            set to 0, ranked lists in ``attrs``), ``delta [sample, neuron]``,
            ``flipped [sample]`` and ``steps [sample]``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> torch.manual_seed(0) is not None
        True
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
        >>> q = ia.model(net).on(torch.randn(40, 4), labels=[2] * 40)
        >>> e = q.counterfactual_neurons(2, top=2)
        >>> ds = e.compute()
        >>> bool(ds.flipped.all()), ds.delta.dims, ds.attrs["head"]
        (True, ('sample', 'neuron'), '2')
        >>> q.counterfactual_neurons(2, head="1")
        Traceback (most recent call last):
        ValueError: head: '1' is a ReLU; the decision layer must be an nn.Linear
        """
        source = source_of(self.node)
        if window_of(self.node) is not None:
            raise ValueError(
                "window: counterfactual neurons change pooled features, not a window of the "
                "input; build them on the query without .window(...)"
            )
        chosen = layer_of(self.node)
        if layer is not None and chosen is not None and layer != chosen:
            raise ValueError(
                f"layer: the query selected layer {chosen!r} but layer={layer!r}; give one"
            )
        cls = check_class_index(cls, source.model)
        module = source.model.torch_module
        check_hookable(module)
        top, max_steps = _integer(top, "top"), _integer(max_steps, "max_steps")
        if head is not None:
            _check_head(module, head, cls, top)
        where = None
        for predicate in self.filters:
            where = predicate if where is None else where & predicate
        node = CounterfactualNeurons(
            base_of(self.node),
            cls,
            layer if layer is not None else chosen,
            head,
            top,
            max_steps,
            _number(lr),
            _number(l1),
            _number(l2),
            where,
        )
        return DatasetExpr(node)


def _integer(value: Any, argument: str) -> Any:
    # NumPy and torch integers become ints (node fields are plain data); the node checks.
    if hasattr(value, "item") and not isinstance(value, bool):
        value = value.item()
    return value


def _number(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, bool):
        value = value.item()
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_head(module: nn.Module, head: str, cls: int, top: Any) -> None:
    """What can be checked of a named head without running the model."""
    modules = dict(module.named_modules())
    if head not in modules:
        return  # the node names the missing layer, with close matches
    linear = modules[head]
    if not isinstance(linear, nn.Linear):
        raise ValueError(
            f"head: {head!r} is a {type(linear).__name__}; the decision layer must be an nn.Linear"
        )
    if cls >= linear.out_features:
        raise ValueError(
            f"cls: class {cls} is out of range; the decision layer {head!r} has "
            f"{linear.out_features} classes (0..{linear.out_features - 1})"
        )
    if isinstance(top, int) and not isinstance(top, bool) and top > linear.in_features:
        raise ValueError(
            f"top: {top} votes per mistake, but the decision layer {head!r} has only "
            f"{linear.in_features} neurons"
        )

"""Counterfactual neurons (NeuroInspect, stage 1) as a lazy, computed node.

:class:`CounterfactualNeurons` reads a model's inputs (a source, or its what-if edits) with
their labels. When computed, one forward finds the samples the query keeps (its ``where``
predicate) and among them the mistakes of class ``cls``; then the smallest additive change
of each mistake's pooled decision features that makes the decision layer predict ``cls``
is optimised, all mistakes in one batch, and every change votes for the neurons that had
to grow (*insufficient*) or shrink (*excessive*). The result is an ``xarray.Dataset``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import did_you_mean, positive_integer
from .columns import Predicate, col
from .model import ModelInfo
from .node import Node
from .views import Edit, Source, source_of

#: The reference drops neurons whose share of the votes is at or below this many percent.
THRESHOLD = 3.0
#: The momentum of the optimiser (the reference's SGD).
MOMENTUM = 0.9
#: The kinds of vote, in the order of the result's ``kind`` dim.
KINDS = ("insufficient", "excessive")
#: The parameters after ``cls``, in the order of the API, with their defaults.
DEFAULTS = (
    ("layer", None),
    ("head", None),
    ("top", 5),
    ("max_steps", 500),
    ("lr", 0.01),
    ("l1", 0.1),
    ("l2", 0.01),
)


def check_class_index(cls: Any, model: ModelInfo, argument: str = "cls") -> int:
    """A class index (or a class name of the model) as an ``int``, checked when the
    model's classes are known.

    Examples
    --------
    >>> from algebra.ir.node import Ref
    >>> info = ModelInfo(Ref(None, "m"), "net", ("cat", "dog"), ())
    >>> check_class_index("dog", info), check_class_index(0, info)
    (1, 0)
    >>> check_class_index(2, info)
    Traceback (most recent call last):
    ValueError: cls: class 2 is out of range; the model has 2 classes (0..1)
    """
    if isinstance(cls, str):
        names = list(model.classes or ())
        if cls not in names:
            hint = did_you_mean(cls, names) if names else " The model has no class names."
            raise ValueError(f"{argument}: {cls!r} names no class of the model.{hint}")
        return names.index(cls)
    if hasattr(cls, "item") and not isinstance(cls, bool):
        cls = cls.item()  # NumPy and torch scalars
    if isinstance(cls, bool) or not isinstance(cls, int):
        raise TypeError(f"{argument}: expected a class index (int) or name (str); got {cls!r}")
    if cls < 0 or (model.num_classes is not None and cls >= model.num_classes):
        count = model.num_classes
        known = f"the model has {count} classes (0..{count - 1})" if count else "it must be >= 0"
        raise ValueError(f"{argument}: class {cls} is out of range; {known}")
    return cls


def _check_number(value: Any, argument: str, positive: bool) -> float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad or not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{argument}: expected {kind} finite number; got {value!r}")
    return float(value)


def mistakes_predicate(cls: int | None = None) -> Predicate:
    """The predicate of ``q.mistakes(cls)``: ``pred != label``, with ``label = cls`` first.

    Examples
    --------
    >>> mistakes_predicate(3)
    Predicate(label = 3 and pred != label)
    """
    wrong = col.pred != col.label
    return wrong if cls is None else (col.label == cls) & wrong


def mistakes_predicate_class(predicate: Predicate | None) -> int | None:
    """The class ``K`` when ``predicate`` is exactly ``label = K and pred != label`` (what
    ``q.mistakes(K)`` builds), else ``None``.

    Examples
    --------
    >>> from algebra.ir.columns import col
    >>> mistakes_predicate_class((col.label == 3) & (col.pred != col.label))
    3
    >>> mistakes_predicate_class(col.pred != col.label) is None
    True
    """
    if predicate is None or predicate.kind != "and":
        return None
    left, right = predicate.args
    if left.kind != "cmp" or right.kind != "cmp":
        return None
    op, column, value = left.args
    if (op, getattr(column, "name", None)) != ("=", "label") or type(value) is not int:
        return None
    if right.to_query() != "pred != label":
        return None
    return value


def _kept_classes(predicate: Predicate | None) -> set[int]:
    """Classes ``K`` of the top-level ``label = K`` terms of a conjunction."""
    if predicate is None:
        return set()
    if predicate.kind == "and":
        return _kept_classes(predicate.args[0]) | _kept_classes(predicate.args[1])
    if predicate.kind == "cmp":
        op, column, value = predicate.args
        if (op, getattr(column, "name", None)) == ("=", "label") and type(value) is int:
            return {value}
    return set()


@dataclass(frozen=True, eq=False)
class CounterfactualNeurons(Node):
    """The counterfactual neurons of the mistakes of class ``cls`` among the samples of
    ``view`` (a source or its edits) for which ``where`` holds.

    ``layer`` names the feature layer (its output is mean-pooled), else the features are the
    input of the decision layer ``head`` (else of the last ``nn.Linear`` called). The
    optimiser's parameters are those of the reference (momentum SGD).
    """

    view: Node
    cls: int
    layer: str | None
    head: str | None
    top: int
    max_steps: int
    lr: float
    l1: float
    l2: float
    where: Predicate | None
    op = "counterfactual_neurons"

    @property
    def model(self) -> ModelInfo:
        """The model whose decision layer is explained (it runs in its own phase)."""
        return source_of(self.view).model

    @property
    def params(self) -> tuple[tuple[str, Any], ...]:
        """The parameters after ``cls``, as the API names them."""
        return tuple((name, getattr(self, name)) for name, _ in DEFAULTS)

    def validate(self) -> None:
        if not isinstance(self.view, (Source, Edit)):
            raise ValueError(
                "view: counterfactual neurons read a model's inputs (a source or its edits); "
                "name the feature layer with layer=, and do not select a window"
            )
        source = source_of(self.view)
        if source.labels is None:
            raise ValueError(
                "labels: counterfactual neurons start from the mistakes, which compare "
                "predictions with labels; pass labels= to model.on(...)"
            )
        if isinstance(self.cls, str):
            raise TypeError("cls: the node takes a class index; the API turns names into indices")
        check_class_index(self.cls, source.model)
        names = source.model.layer_names
        for argument in ("layer", "head"):
            name = getattr(self, argument)
            if name is not None and name not in names:
                raise ValueError(
                    f"{argument}: the model has no layer {name!r}."
                    + did_you_mean(name, names)
                    + " Layers are named as in model.named_modules(); see Model.layer_names."
                )
        positive_integer(self.top, "top")
        positive_integer(self.max_steps, "max_steps")
        _check_number(self.lr, "lr", positive=True)
        _check_number(self.l1, "l1", positive=False)
        _check_number(self.l2, "l2", positive=False)
        if self.where is not None and not isinstance(self.where, Predicate):
            raise TypeError(f"where: expected a predicate; got {type(self.where).__name__}")
        other = sorted(_kept_classes(self.where) - {self.cls})
        if other:
            raise ValueError(
                f"cls: the query keeps only samples labelled {other[0]} (its where clause), "
                f"so it holds no mistakes of class {self.cls}"
            )


def describe_neurons(node: CounterfactualNeurons) -> str:
    """The node as the user chained it, every parameter shown.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4), labels=[0, 1])
    >>> describe_neurons(q.mistakes(1).counterfactual_neurons(1, top=2).node)
    'counterfactual_neurons(cls=1, layer=None, head=None, top=2, max_steps=500, lr=0.01, l1=0.1, l2=0.01) where label = 1 and pred != label'
    """
    params = ", ".join(f"{k}={v!r}" for k, v in (("cls", node.cls), *node.params))
    where = f" where {node.where.to_query()}" if node.where is not None else ""
    return f"counterfactual_neurons({params}){where}"

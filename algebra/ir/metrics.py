"""Evaluation metrics of attribution maps: computed nodes over an attribution expression.

A :class:`Metric` scores the map its child computes against the model: deletion and
insertion curves, infidelity, sensitivity-max and faithfulness correlation. Each gives one
value (or curve) per sample and target and is computed after the attributions it reads;
metrics of several maps of the same inputs share one stream of forwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import positive_integer, unknown_name
from .attribution import Attribution
from .node import Node
from .players import check_positive, check_seed
from .relational import Abs, Normalize, Reduce, TopKFeatures
from .views import layer_of, source_of

METRICS = ("deletion", "insertion", "infidelity", "sensitivity_max", "faithfulness_correlation")
# Verbs that keep one map per sample and target: a metric reads through them.
MAP_VERBS = (Abs, Normalize, TopKFeatures, Reduce)
# Each metric's parameters, in order, and their checks.
_CHECKS: dict[str, dict[str, Any]] = {
    "deletion": {"steps": positive_integer, "baseline": None},
    "insertion": {"steps": positive_integer, "baseline": None},
    "infidelity": {
        "samples": positive_integer,
        "stdev": check_positive,
        "seed": None,
        "normalize": None,
    },
    "sensitivity_max": {"radius": check_positive, "samples": positive_integer, "seed": None},
    "faithfulness_correlation": {
        "samples": positive_integer,
        "subset": None,
        "seed": None,
        "baseline": None,
    },
}


def positions(shape: tuple[int, ...]) -> int:
    """Players of faithfulness correlation: an image's positions (spanning its channels),
    else its features.

    Examples
    --------
    >>> positions((2, 3, 8, 8)), positions((5, 6))
    (64, 6)
    """
    if len(shape) == 4:
        return shape[-2] * shape[-1]
    count = 1
    for s in shape[1:]:
        count *= s
    return count


def attribution_of(node: Node) -> Attribution:
    """The attribution under a map expression (an attribution and per-map verbs).

    Raises ``ValueError`` when the expression is not one map per sample and target.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> attribution_of(q.saliency(0).abs().node).method
    'saliency'
    >>> attribution_of(q.saliency(0).mean("sample").node)
    Traceback (most recent call last):
    ValueError: attr: a metric scores one map per sample and target; mean(['sample']) reduces over 'sample'
    """
    while not isinstance(node, Attribution):
        if node.op == "input":  # one input's share of an attribution of several
            raise ValueError(
                "attr: metrics perturb one input tensor; a map of one of several inputs, "
                "token ids or an input with forward_kwargs is not supported yet"
            )
        if not isinstance(node, MAP_VERBS):
            raise ValueError(
                f"attr: a metric scores an attribution of one model's inputs (optionally with "
                f"abs, normalize, topk_features or a sum/mean over feature dims); got {node.op}"
            )
        if isinstance(node, Reduce):
            across = sorted({"sample", "target"} & set(node.dims or ("sample",)))
            if across:
                shown = "every dim" if node.dims is None else repr(across[0])
                written = "" if node.dims is None else list(node.dims)
                raise ValueError(
                    "attr: a metric scores one map per sample and target; "
                    f"{node.how}({written}) reduces over {shown}"
                )
        node = node.child  # type: ignore[attr-defined]
    return node


@dataclass(frozen=True, eq=False)
class Metric(Node):
    """The metric ``kind`` (one of :data:`METRICS`) of the map ``child``, with ``params``."""

    child: Node
    kind: str
    params: tuple[tuple[str, Any], ...]
    op = "metric"

    def validate(self) -> None:
        if self.kind not in METRICS:
            raise unknown_name("metric", self.kind, METRICS)
        attr = attribution_of(self.child)
        if attr.target.kind == "fn":
            raise ValueError(
                f"{self.kind}: a metric scores the class a map explains; a callable target "
                "names no class"
            )
        layer = layer_of(attr.view)
        upsampled = attr.method == "grad_cam" and dict(attr.params).get("upsample")
        if layer is not None and not upsampled:
            raise ValueError(
                f"{self.kind}: metrics perturb the inputs, but this map is over layer "
                f"{layer!r}; score a map of the inputs (or grad_cam with upsample=True)"
            )
        checks = _CHECKS[self.kind]
        names = [k for k, _ in self.params]
        if names != list(checks):
            raise ValueError(f"{self.kind}: expected parameters {list(checks)}; got {names}")
        for key, value in self.params:
            check = checks[key]
            if check is not None:
                check(value, key)
        check_seed(self.options.get("seed"))
        subset = self.options.get("subset")
        if subset is not None:
            count = positions(source_of(self.child).shape)
            if positive_integer(subset, "subset") > count:
                raise ValueError(
                    f"subset: {subset} is more than the {count} players (positions of an "
                    "image, features otherwise) a subset is drawn from"
                )

    @property
    def options(self) -> dict[str, Any]:
        """The metric's parameters by name."""
        return dict(self.params)

    @property
    def attribution(self) -> Attribution:
        """The attribution under the map."""
        return attribution_of(self.child)

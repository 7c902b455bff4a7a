"""Units of a layer as targets, resolved against the layer's shape when a method uses them.

``ia.unit(layer, index)`` and ``ia.units(layer)`` (:mod:`algebra.ir.targets`) name units
without a model; a method checks them on its query's model: the layer exists, every index
lies inside its output, and the number of units is known (a one-sample probe).
"""

from __future__ import annotations

from typing import Any

from ..errors import did_you_mean
from ..ir.node import Node, Ref
from ..ir.targets import Target, as_target
from ..ir.views import source_of
from ..kernels.units import check_units, unit_scores
from .params import probe


def resolved_target(node: Node, target: Any) -> Target:
    """``target`` as a :class:`~algebra.ir.targets.Target`; units checked on the view's model
    and counted.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    >>> q = ia.model(net).on(torch.rand(2, 3, 6, 6))
    >>> resolved_target(q.node, ia.units("1")).value
    ('1', 'all', 8)
    >>> resolved_target(q.node, ia.unit("1", 9))
    Traceback (most recent call last):
    ValueError: unit: index 9 is outside layer '1''s dim 0 of size 8 (per-sample shape [8, 4, 4]; valid 0..7)
    >>> resolved_target(q.node, ia.units("2"))
    Traceback (most recent call last):
    ValueError: unit: the model has no layer '2'. Layers are named as in model.named_modules().
    """
    resolved = as_target(target)
    if resolved.kind not in ("unit", "units"):
        return resolved
    layer, which, _ = resolved.value  # type: ignore[misc]
    names = source_of(node).model.layer_names
    if layer not in names:
        raise ValueError(
            f"unit: the model has no layer {layer!r}."
            + did_you_mean(layer, names)
            + " Layers are named as in model.named_modules()."
        )
    acts = probe(node, layer)
    if isinstance(which, Ref):  # a callable: its scores on the probe give the count
        count = unit_scores(acts, which.value, layer).shape[1]
        if resolved.kind == "unit" and count != 1:
            raise ValueError(
                f"unit: a callable unit must return one score per sample ([N]); it returned "
                f"{count} per sample: use ia.units({layer!r}, fn) for several"
            )
    else:
        spec = list(which) if resolved.kind == "units" and isinstance(which, tuple) else which
        count = check_units(spec, tuple(acts.shape[1:]), layer)
    return Target(resolved.kind, (layer, which, count))

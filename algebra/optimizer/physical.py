"""Stage 2, physical: requests grouped by model and inputs (a job) and by point set (a group).

Every job evaluates its inputs first (their logits resolve data-dependent targets), then
baselines, then integration paths, then streams of perturbed copies (one per baseline and
layer: every perturbation design on them shares its forwards). A path or a stream through a
layer runs between the layer's activations at the baseline and at the inputs, so both
point sets capture that layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import OptimizerOptions
from ..ir.attribution import Attribution
from ..ir.node import Node
from ..ir.views import Noise, Source, base_of, noise_of, source_of
from ..kernels.plan import Group, Points
from .simplify import Lowered, Simplified

# Inputs first (their logits resolve targets; their activations are what later sets read),
# then baselines, paths and the gradient family's other point sets.
_ORDER = {"inputs": 0, "baseline": 1, "path": 2, "copies": 3}


@dataclass(frozen=True)
class PhysicalJob:
    """One model on one batch of (possibly edited) inputs, and its point sets."""

    source: Source
    base: Node
    groups: tuple[Group, ...]
    items: tuple[Lowered, ...]
    noise: Noise | None = None

    @property
    def nodes(self) -> dict[str, Attribution]:
        """The attributions this job computes, by token."""
        return {item.node.token: item.node for item in self.items}


def physical(simplified: Simplified, rules: OptimizerOptions) -> tuple[PhysicalJob, ...]:
    """Group the lowered attributions into jobs of point-set groups.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer.rules import flags
    >>> from algebra.optimizer.simplify import simplify
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> nodes = [q.saliency(0).node, q.integrated_gradients(0, steps=4).node]
    >>> [job] = physical(simplify(nodes, flags()), flags())
    >>> [g.points.kind for g in job.groups]
    ['inputs', 'path']
    """
    jobs: dict[str, list[Lowered]] = {}
    for item in simplified.items:
        jobs.setdefault(item.job, []).append(item)
    return tuple(_job(items) for items in jobs.values())


def _job(items: list[Lowered]) -> PhysicalJob:
    inputs = Points("inputs")
    groups: dict[str, Group] = {inputs.key: Group(inputs)}

    def add(points: Points, request: object = None, capture: tuple[str, ...] = ()) -> None:
        group = groups.setdefault(points.key, Group(points))
        field = "perturbations" if points.kind == "copies" else "requests"
        held = getattr(group, field)
        if request is not None and all(r.key != request.key for r in held):  # type: ignore[attr-defined]
            held = (*held, request)
        merged = tuple(dict.fromkeys([*group.capture, *capture]))
        groups[points.key] = replace(group, **{field: held}, capture=merged)

    for item in items:
        add(item.points, item.request, item.capture)
        for points, request, capture in item.extra:
            add(points, request, capture)
        if item.path_layer is not None:  # the path's ends: the layer at inputs and baseline
            add(inputs, capture=(item.path_layer,))
            add(
                Points("baseline", item.points.path, owner=item.points.owner),
                capture=(item.path_layer,),
            )
    ordered = sorted(
        groups.values(), key=lambda g: (_ORDER.get(g.points.kind, 3), g.points.owner != "")
    )
    view = items[0].node.view
    base = base_of(view)
    return PhysicalJob(source_of(base), base, tuple(ordered), tuple(items), noise_of(view))

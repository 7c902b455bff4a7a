"""Run the optimizer's stages and keep each stage's output for ``explain()``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import OptimizerOptions
from ..ir.attribution import Attribution
from . import lowering  # noqa: F401  (registers the gradient family's lowerings)
from .fuse import Planned, fuse
from .physical import PhysicalJob, physical
from .rules import flags
from .simplify import Simplified, simplify


@dataclass(frozen=True)
class Plan:
    """The output of every stage: ``logical`` (the attributions as written), ``simplified``,
    ``physical`` and ``fused`` (the frozen jobs the executor runs), under ``rules``."""

    rules: OptimizerOptions
    logical: tuple[Attribution, ...]
    simplified: Simplified
    physical: tuple[PhysicalJob, ...]
    fused: tuple[Planned, ...]


def optimize(nodes: list[Attribution], rules: OptimizerOptions | None = None) -> Plan:
    """Plan the attributions ``nodes``: simplify, group by points, fuse.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> plan = optimize([q.saliency(0).node, q.input_x_gradient(0).node])
    >>> plan.simplified.requests, [len(g.requests) for g in plan.fused[0].job.groups]
    (1, [1])
    """
    rules = rules or flags()
    simplified = simplify(nodes, rules)
    grouped = physical(simplified, rules)
    return Plan(rules, tuple(nodes), simplified, grouped, fuse(grouped, rules))

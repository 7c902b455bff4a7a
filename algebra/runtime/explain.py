"""``explain()`` at run time: the optimizer's stages, with the kernels' description of each
job's passes (chunks, targets per backward) under the current memory budget."""

from __future__ import annotations

from ..config import OptimizerOptions
from ..ir.attribution import Attribution
from ..ir.format import describe_expr
from ..ir.neurons import CounterfactualNeurons
from ..ir.node import Node
from ..kernels.edits import stand_in
from ..kernels.guard import device_of
from ..kernels.sizing import budget_of, known_classes, passes
from ..optimizer import optimize
from ..optimizer.explain import JobSizes, explain_text
from .neurons import neuron_plan


def plan_text(leaves: list[Attribution], roots: list[Node], rules: OptimizerOptions) -> str:
    """The plan of ``roots`` (computed from ``leaves``), stage by stage. Runs nothing.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> node = q.saliency(0).node
    >>> print(plan_text([node], [node], flags()).splitlines()[-1])
    total: 1 forward (2 rows), 1 backward
    """
    plan = optimize(leaves, rules)
    sizes = []
    for planned in plan.fused:
        job = stand_in(planned.job)  # plans need shapes, not the edits' values
        described, measured = passes(job)
        budget = budget_of(job, device_of(job.module, default=job.inputs.device))
        sizes.append(JobSizes(budget, described, measured, known_classes(job)))
    text = explain_text(plan, sizes)
    neurons = [n for n in roots if isinstance(n, CounterfactualNeurons)]
    if neurons:  # a phase of their own; alone, the empty plan of attributions is left out
        count = len(neurons)
        parts = [text] if leaves else [f"plan: {count} counterfactual neuron expression"]
        parts[0] += "s" * (count != 1 and not leaves)
        parts += [f"logical: {describe_expr(n)}\n{neuron_plan(n)}" for n in neurons]
        text = "\n".join(parts)
    skipped = (Attribution, CounterfactualNeurons)
    steps = [describe_expr(n) for n in roots if not isinstance(n, skipped)]
    if steps:
        text += "\nthen, on the device: " + str(len(steps)) + " derived expression"
        text += "s" * (len(steps) != 1) + "\n" + "\n".join(f"  {step}" for step in steps)
    return text

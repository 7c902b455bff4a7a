"""``explain()`` at run time: the optimizer's stages, with the kernels' description of each
job's passes (chunks, targets per backward) under the current memory budget."""

from __future__ import annotations

from ..config import OptimizerOptions
from ..ir.attribution import Attribution
from ..ir.format import describe_expr
from ..ir.format import shown as shown_value
from ..ir.metrics import Metric
from ..ir.neurons import CounterfactualNeurons
from ..ir.node import Node, walk
from ..ir.views import base_of, source_of
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
    metrics = [n for n in walk(roots) if isinstance(n, Metric)]
    if metrics:
        text += "\n" + metric_text(metrics)
    return text


def metric_text(metrics: list[Metric]) -> str:
    """What the metrics' second phase runs: one stream per model, inputs and baseline (how
    many copies it holds is known once the maps are), and sensitivity-max's re-attributions.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> m = [q.saliency(0).deletion(steps=4).node, q.saliency(1).infidelity(samples=5).node]
    >>> print(metric_text(m))
    metrics, after the maps (their passes are not in the total above):
      stream on inputs [2, 4], baseline 0.0: deletion x1 (5 copies per map and target), infidelity x1 (5 noisy copies each)
    """
    lines = ["metrics, after the maps (their passes are not in the total above):"]
    streams: dict[tuple, dict[str, list[Metric]]] = {}
    for m in sorted(metrics, key=lambda m: m.kind == "infidelity"):  # as the runtime does
        source = source_of(m.attribution.view)
        if m.kind == "sensitivity_max":
            o = m.options
            rows = o["samples"] * source.n
            lines.append(
                f"  {describe_expr(m.attribution)}: sensitivity_max re-attributes "
                f"{o['samples']} noisy copies of the {source.n} inputs ({rows} rows, planned "
                "with every re-attribution of the same noise)"
            )
            continue
        job = (id(source.model.torch_module), base_of(m.attribution.view).token)
        if m.kind == "infidelity":  # no baseline: it joins any stream of its inputs
            key = next((k for k in streams if k[:2] == job), (*job, ""))
        else:
            key = (*job, f", baseline {shown_value(m.options.get('baseline'))}")
        streams.setdefault(key, {}).setdefault(m.kind, []).append(m)
    for (*_, shown), kinds in streams.items():
        source = source_of(next(iter(kinds.values()))[0].attribution.view)
        parts = []
        for kind, members in kinds.items():
            o = members[0].options
            each = {
                "deletion": f"{o.get('steps', 0) + 1} copies per map and target",
                "insertion": f"{o.get('steps', 0) + 1} copies per map and target",
                "faithfulness_correlation": f"{o.get('samples', 0) + 1} copies per map",
                "infidelity": f"{o.get('samples', 0)} noisy copies each",
            }[kind]
            parts.append(f"{kind} x{len(members)} ({each})")
        lines.append(f"  stream on inputs {list(source.shape)}{shown}: {', '.join(parts)}")
    return "\n".join(lines)

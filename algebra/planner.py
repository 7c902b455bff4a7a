"""The planner: turns attribution nodes into kernel jobs, and prints the plan."""

from __future__ import annotations

from .kernels.plan import GradTask, Pass, PathSpec, SourceJob, TargetSpec, passes
from .methods import method as lookup_method
from .nodes import Ref
from .operators import Attribution, Source, layer_of, source_of


def describe(node: Attribution, with_layer: bool = True) -> str:
    """One line for an attribution node, as the user would have written it.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> describe(q.integrated_gradients(ia.topk(2), steps=8).node)
    "integrated_gradients(target=topk(2), steps=8, method='gausslegendre', baseline=0.0)"
    """
    params = [f"target={node.target.describe()}"]
    for key, value in node.params:
        shown = f"tensor{list(value.value.shape)}" if isinstance(value, Ref) else repr(value)
        params.append(f"{key}={shown}")
    layer = layer_of(node.view) if with_layer else None
    at = f" at layer {layer!r}" if layer else ""
    return f"{node.method}({', '.join(params)}){at}"


def task_for(node: Attribution) -> GradTask:
    """The kernel task that computes ``node``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> task = task_for(q.integrated_gradients("pred", steps=8).node)
    >>> task.target, task.times_input, task.path.steps
    (TargetSpec(kind='pred', value=None), True, 8)
    """
    spec = lookup_method(node.method)
    options = node.options
    target = node.target
    value = target.value.value if isinstance(target.value, Ref) else target.value
    path = PathSpec(options["steps"], options["method"], options["baseline"]) if spec.path else None
    return GradTask(
        key=node.token,
        target=TargetSpec(target.kind, value),  # type: ignore[arg-type]
        layer=layer_of(node.view),
        times_input=spec.times_input,
        absolute=bool(options.get("abs", False)),
        path=path,
    )


def plan(nodes: list[Attribution]) -> list[tuple[Source, SourceJob]]:
    """Group unique nodes by their source (model and inputs): one job per source.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> [len(job.tasks) for _, job in plan([q.saliency(0).node, q.input_x_gradient(1).node])]
    [2]
    """
    jobs: dict[str, tuple[Source, SourceJob]] = {}
    for node in {n.token: n for n in nodes}.values():
        source = source_of(node.view)
        if source.token not in jobs:
            labels = None if source.labels is None else source.labels.value
            model = source.wrapped_model
            job = SourceJob(model.module, source.inputs.value, labels, outputs=model.num_classes)
            jobs[source.token] = (source, job)
        jobs[source.token][1].tasks.append(task_for(node))
    return list(jobs.values())


def _targets(node: Attribution, num_classes: int | None) -> str:
    kind, value = node.target.kind, node.target.value
    count = {"topk": value, "classes": len(value) if isinstance(value, tuple) else 0}.get(kind, 1)
    if kind == "all":
        count = num_classes if num_classes is not None else "C"
    return f"{count} target{'s' if count != 1 else ''}"


def _pass_lines(
    p: Pass, n: int, nodes: dict[str, Attribution], num_classes: int | None
) -> list[str]:
    rows = p.batch_per_sample * n
    if p.kind == "inputs":
        what = "inputs"
    elif p.kind == "baseline":
        what = f"baseline activations of layer {p.capture[0]!r}"
    else:
        assert p.task is not None and p.task.path is not None
        what = f"path: {p.task.path.steps} steps x {n} samples ({p.task.path.rule})"
    notes = ["with gradients" if p.grad else "no gradients"]
    if p.capture and p.kind == "inputs":
        notes.append("capture " + ", ".join(repr(c) for c in p.capture))
    lines = [f"  forward  {what:<25} batch {rows}  ({'; '.join(notes)})"]
    for task in p.backward:
        node = nodes[task.key]
        wrt = f"layer {task.layer!r}" if task.layer else "input"
        batched = " (one batched backward)" if _targets(node, num_classes) != "1 target" else ""
        lines.append(
            f"    backward {describe(node, with_layer=False)} wrt {wrt}: "
            f"{_targets(node, num_classes)} x {rows} rows{batched}"
        )
    return lines


def explain(nodes: list[Attribution]) -> str:
    """The text plan of what computing ``nodes`` runs: forward and backward passes, batch sizes.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4))
    >>> print(explain([q.integrated_gradients("pred", steps=4).node]))
    plan: 1 expression on 1 batch of inputs
    model 'lin' on inputs [2, 4]
      forward  inputs                    batch 2  (no gradients)
      forward  path: 4 steps x 2 samples (gausslegendre) batch 8  (with gradients)
        backward integrated_gradients(target='pred', steps=4, method='gausslegendre', baseline=0.0) wrt input: 1 target x 8 rows
    total: 2 forwards (10 rows), 1 backward
    """
    by_token = {n.token: n for n in nodes}
    jobs = plan(list(by_token.values()))
    count = len(by_token)
    lines = [
        f"plan: {count} expression{'s' if count != 1 else ''} on {len(jobs)} "
        f"batch{'es' if len(jobs) != 1 else ''} of inputs"
    ]
    forwards = backwards = rows = 0
    for source, job in jobs:
        model = source.wrapped_model
        lines.append(f"model {model.name!r} on inputs {list(source.shape)}")
        for p in passes(job):
            lines += _pass_lines(p, source.n, by_token, model.num_classes)
            forwards += 1
            backwards += len(p.backward)
            rows += p.batch_per_sample * source.n
    lines.append(
        f"total: {forwards} forward{'s' if forwards != 1 else ''} ({rows} rows), "
        f"{backwards} backward{'s' if backwards != 1 else ''}"
    )
    return "\n".join(lines)

"""Execute a :class:`~algebra.kernels.plan.SourceJob`: forward and backward passes on device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .capture import captured, replaced
from .gradients import target_gradients
from .guard import device_of, guarded
from .paths import alphas_and_weights, integrate, path_points
from .plan import GradTask, SourceJob, passes
from .targets import class_rows


@dataclass
class TaskResult:
    """Attributions ``[T, N, ...]`` and the classes attributed ``[T, N]`` (``None`` for callables)."""

    values: torch.Tensor
    classes: torch.Tensor | None


@dataclass
class JobResult:
    """What one job produced: the model's logits at the inputs and each task's result."""

    logits: torch.Tensor
    tasks: dict[str, TaskResult]


def execute(job: SourceJob) -> JobResult:
    """Run every pass of ``job`` on the module's device; results stay on that device.

    Examples
    --------
    >>> from algebra.kernels.plan import GradTask, TargetSpec
    >>> net = torch.nn.Linear(3, 2)
    >>> job = SourceJob(net, torch.ones(4, 3), tasks=[GradTask("g", TargetSpec("index", 1))])
    >>> out = execute(job)
    >>> torch.equal(out.tasks["g"].values[0], net.weight[1].expand(4, 3))
    True
    """
    module = job.module
    device = device_of(module, default=job.inputs.device)
    x = job.inputs.to(device)
    labels = None if job.labels is None else job.labels.to(device)
    results: dict[str, TaskResult] = {}
    with guarded(module):
        plan = passes(job)
        first = plan[0]
        x_in = x.detach().requires_grad_(first.grad)
        with torch.set_grad_enabled(first.grad), captured(module, first.capture) as acts:
            outputs = _forward(module, x_in)
        logits = outputs.detach()
        if job.outputs is not None and logits.shape[1] != job.outputs:
            raise ValueError(
                f"classes: {job.outputs} class names were given, but the model has "
                f"{logits.shape[1]} outputs"
            )
        rows = {t.key: class_rows(t.target, logits, labels) for t in job.tasks}
        for task in first.backward:
            wrt = x_in if task.layer is None else acts[task.layer]
            grads = target_gradients(outputs, wrt, rows[task.key], task.target, retain_graph=True)
            values = grads * wrt.detach() if task.times_input else grads
            results[task.key] = TaskResult(
                values.abs() if task.absolute else values, rows[task.key]
            )
        del outputs
        baselines: dict[str, torch.Tensor] = {}
        for p in plan[1:]:
            task = p.task
            assert task is not None and task.path is not None
            if p.kind == "baseline":
                assert task.layer is not None
                with torch.no_grad(), captured(module, (task.layer,)) as base_acts:
                    _forward(module, _baseline_like(task, x))
                baselines[task.key] = base_acts[task.layer]
                continue
            start, end = _path_ends(task, x, acts, baselines)
            results[task.key] = TaskResult(
                _integrated(module, task, x, start, end, rows[task.key]), rows[task.key]
            )
    return JobResult(logits, results)


def _forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = module(x)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model: expected an output of shape [N, classes] = [{x.shape[0]}, C]; got {shape}"
        )
    return out


def _baseline_like(task: GradTask, x: torch.Tensor) -> torch.Tensor:
    assert task.path is not None
    base = task.path.baseline
    if isinstance(base, torch.Tensor):
        return base.to(device=x.device, dtype=x.dtype).expand_as(x)
    return torch.full_like(x, float(base))


def _path_ends(
    task: GradTask,
    x: torch.Tensor,
    acts: dict[str, torch.Tensor],
    baselines: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    if task.layer is None:
        return _baseline_like(task, x), x
    return baselines[task.key], acts[task.layer].detach()


def _integrated(
    module: torch.nn.Module,
    task: GradTask,
    x: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    rows: torch.Tensor | None,
) -> torch.Tensor:
    assert task.path is not None
    steps = task.path.steps
    alphas, weights = alphas_and_weights(task.path.rule, steps)
    points = path_points(start, end, alphas).requires_grad_(True)
    path_rows = None if rows is None else rows.repeat(1, steps)
    with torch.enable_grad():
        if task.layer is None:
            outputs = _forward(module, points)
        else:
            with replaced(module, task.layer, points):
                outputs = _forward(module, x.repeat(steps, *([1] * (x.ndim - 1))))
        grads = target_gradients(outputs, points, path_rows, task.target, retain_graph=False)
    return integrate(grads, weights, steps) * (end - start)

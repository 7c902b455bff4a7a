"""The physical plan: what the kernels execute, in plain data (no expression nodes).

The planner in :mod:`algebra.planner` builds these; :func:`passes` is the one place that
decides which forward and backward passes a job runs, so ``explain()`` prints exactly what
:func:`algebra.kernels.execute.execute` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# The integration rules of integrated gradients, in Captum's names.
INTEGRATION_RULES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)

TargetKind = Literal["index", "per_sample", "pred", "label", "topk", "all", "classes", "fn"]


@dataclass(frozen=True)
class TargetSpec:
    """Which output scalar(s) to differentiate: a kind and its value."""

    kind: TargetKind
    value: int | tuple[int, ...] | Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class PathSpec:
    """An integration path: ``steps`` points from ``baseline`` to the input, by ``rule``."""

    steps: int
    rule: str
    baseline: Any  # float or tensor broadcastable to the inputs


@dataclass(frozen=True)
class GradTask:
    """One attribution: gradients of ``target`` with respect to the input or a layer.

    ``times_input`` multiplies by the input (or activation), ``absolute`` takes ``abs``,
    and ``path`` (when given) integrates the gradient along a path (integrated gradients).
    """

    key: str
    target: TargetSpec
    layer: str | None = None
    times_input: bool = False
    absolute: bool = False
    path: PathSpec | None = None


@dataclass
class SourceJob:
    """All tasks on one model and one batch of inputs.

    ``outputs`` is the number of model outputs the caller expects (from class names), checked
    after the first forward pass so a mismatch fails before the expensive passes.
    """

    module: Any
    inputs: Any
    labels: Any = None
    tasks: list[GradTask] = field(default_factory=list)
    outputs: int | None = None


@dataclass(frozen=True)
class Pass:
    """One forward pass (and the backward passes that follow it) of a job.

    ``kind`` is ``"inputs"`` (the inputs themselves), ``"baseline"`` (layer activations of
    a task's baseline) or ``"path"`` (a task's integration points). ``batch_per_sample`` is
    the number of rows evaluated per input sample.
    """

    kind: Literal["inputs", "baseline", "path"]
    batch_per_sample: int
    grad: bool
    capture: tuple[str, ...] = ()
    backward: tuple[GradTask, ...] = ()
    task: GradTask | None = None


def passes(job: SourceJob) -> list[Pass]:
    """The passes that :func:`~algebra.kernels.execute.execute` runs for ``job``, in order.

    Examples
    --------
    >>> job = SourceJob(None, None, tasks=[GradTask("a", TargetSpec("pred"))])
    >>> [(p.kind, p.batch_per_sample, p.grad) for p in passes(job)]
    [('inputs', 1, True)]
    """
    direct = tuple(t for t in job.tasks if t.path is None)
    paths = [t for t in job.tasks if t.path is not None]
    capture = {t.layer for t in job.tasks if t.layer is not None}
    plan = [Pass("inputs", 1, bool(direct), tuple(sorted(capture)), direct)]
    for task in paths:
        assert task.path is not None
        if task.layer is not None:
            plan.append(Pass("baseline", 1, False, (task.layer,), (), task))
        plan.append(Pass("path", task.path.steps, True, (), (task,), task))
    return plan

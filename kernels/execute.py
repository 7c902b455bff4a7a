"""Execute a :class:`~algebra.kernels.plan.Job`: chunked forward and batched backward passes.

Groups run in order: the inputs (which give the logits that resolve data-dependent targets,
and the layer activations later passes need), then baselines, then integration paths.
Every group is cut into chunks that fit the memory budget; results stay on the model's
device.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .backward import backward
from .capture import captured
from .checks import check_gradients_available, check_model_ready, model_dtype
from .chunks import sample_chunks
from .guard import device_of, guarded, user_stacklevel
from .memory import profiling, warn_over_budget
from .noise_runs import clean_logits, noised
from .ops import Ops, write
from .path_runs import path_ends, run_baseline, run_path
from .plan import ExecConfig, Group, Job, Output, Request
from .postprocess import grad_cam
from .run_copies import run_copies
from .runs import ASSEMBLERS, RUNNERS, path_delta, rules_of
from .sizing import budget_of, classes_of, rows_per_chunk, shortfall
from .targets import class_rows
from .unit_targets import backward_by_source, unit_layers
from .windows import inside


@dataclass
class TaskResult:
    """Attributions ``[T, N, ...]``, the classes attributed ``[T, N]`` (``None`` for callables),
    for methods with completeness the convergence delta ``[T, N]``, and for perturbation
    methods their player map (``players``)."""

    values: torch.Tensor
    classes: torch.Tensor | None
    delta: torch.Tensor | None = None
    players: torch.Tensor | None = None


@dataclass
class JobResult:
    """What one job produced: the model's logits at the inputs and each output's result."""

    logits: torch.Tensor
    tasks: dict[str, TaskResult]


@dataclass
class _State:
    """What earlier groups leave for later ones and for assembling the outputs."""

    x: torch.Tensor
    labels: torch.Tensor | None
    budget: int | None
    logits: torch.Tensor | None = None
    rows: dict[str, torch.Tensor | None] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    baselines: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)
    warned: bool = False
    nan_warned: bool = False
    perturbed: dict[str, tuple] = field(default_factory=dict)
    # What the gradient family's passes leave for their outputs (kernels.runs).
    extra: dict = field(default_factory=dict)


def execute(job: Job) -> JobResult:
    """Run every group of ``job`` on the module's device; results stay on that device.

    Examples
    --------
    >>> from algebra.kernels.plan import Group, Output, Points, Request, TargetSpec
    >>> net = torch.nn.Linear(3, 2).eval()
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("index", 1)),))
    >>> job = Job(net, torch.ones(4, 3), groups=(group,), results=(Output("g", "r", "gradient"),))
    >>> out = execute(job)
    >>> torch.equal(out.tasks["g"].values[0], net.weight[1].expand(4, 3))
    True
    """
    module = job.module
    _check_runnable(job)
    device = device_of(module, default=job.inputs.device)
    x = job.inputs.to(device)
    labels = None if job.labels is None else job.labels.to(device)
    clean = x
    if job.noise is not None:  # every group on noisy copies, targets from the clean inputs
        job, x, labels = noised(job, x, labels)
    cfg = job.config
    state = _State(x, labels, budget_of(job, device))
    with contextlib.ExitStack() as stack:
        stack.enter_context(guarded(module))
        if job.reference is not None and job.reference is not module:
            stack.enter_context(guarded(job.reference))  # a training-mode forward changes it
        stack.enter_context(_precision(cfg, device))
        if job.noise is not None:
            per_chunk = rows_per_chunk(job, job.groups[0], clean, state.budget, 1, len(clean))
            logits = clean_logits(job, clean, per_chunk, _forward)
            state.logits = logits.repeat(len(x) // len(clean), 1)
        elif job.reference is not None:
            state.logits = _reference_logits(job, state)
        for group in job.groups:
            if group.points.kind == "inputs":
                _run_inputs(module, job, group, state)
            elif group.points.kind == "copies":
                run_copies(module, job, group, state)
            else:
                _check_budget(job, group, state)
                if group.points.kind == "baseline":
                    run_baseline(module, job, group, state, _OPS)
                elif group.points.kind in RUNNERS:
                    RUNNERS[group.points.kind](module, job, group, state, _OPS)
                else:
                    run_path(module, job, group, state, _OPS)
    assert state.logits is not None
    tasks = {out.key: _assemble(out, job, state) for out in job.results}
    return JobResult(state.logits[: len(clean)], tasks)


def _check_runnable(job: Job) -> None:
    """Clear errors for what autograd or the model would otherwise report obscurely."""
    check_gradients_available()
    for module in (job.module, job.reference):
        if isinstance(module, torch.nn.Module):
            check_model_ready(module)
    dtype = model_dtype(job.module)
    x = job.inputs
    if x.device.type == "meta":
        raise ValueError("inputs: the tensor is on the meta device, which holds no values")
    if dtype is not None and x.is_floating_point() and x.dtype != dtype:
        raise TypeError(
            f"model: its parameters are {dtype} but the query's inputs are {x.dtype}: the "
            "model was converted after the query was built; build the query again with "
            "model.on(inputs) (inputs in the model's dtype)"
        )


@contextlib.contextmanager
def _precision(cfg: ExecConfig, device: torch.device) -> Iterator[None]:
    if cfg.precision == "fp32":
        yield
        return
    if device.type != "cuda":
        raise ValueError(
            f"precision: {cfg.precision!r} runs only on CUDA; the model is on {device.type}. "
            "Set ia.options.precision = 'fp32'"
        )
    with torch.autocast("cuda", dtype=torch.bfloat16):
        yield


def _reference_logits(job: Job, state: _State) -> torch.Tensor:
    # One gradient-free pass of the reference model, chunked like the inputs' pass.
    n = state.x.shape[0]
    per_chunk = rows_per_chunk(job, job.groups[0], state.x, state.budget, 1, n)
    parts = []
    with torch.no_grad():
        for n0, n1 in sample_chunks(n, per_chunk):
            parts.append(_forward(job.reference, state.x[n0:n1]))
    logits = torch.cat(parts)
    _keep_logits(job, state, logits, 0, n)
    return logits


def _forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = module(x)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model: expected an output of shape [N, classes] = [{x.shape[0]}, C]; got {shape}"
        )
    return out


def _check_budget(job: Job, group: Group, state: _State) -> None:
    """Warn (once per job) when not even one row of ``group``, or the results, fit."""
    if state.budget is None or state.warned:
        return
    classes = classes_of(job, state.x, state.logits)
    short = shortfall(job, group, state.x, state.budget, classes)
    if short is not None:
        state.warned = warn_over_budget(*short)


def _per_chunk(job: Job, group: Group, state: _State, rows: int) -> int:
    classes = classes_of(job, state.x, state.logits)
    return rows_per_chunk(job, group, state.x, state.budget, classes, rows)


def _run_inputs(module: torch.nn.Module, job: Job, group: Group, state: _State) -> None:
    n = state.x.shape[0]
    first = state.logits is None
    units = unit_layers(group.requests)
    capture = tuple(dict.fromkeys([*group.capture, *(w for w in group.wrt if w), *units]))
    input_grad = None in group.wrt
    n0 = 0
    while n0 < n:
        n1 = min(n, n0 + _per_chunk(job, group, state, n))
        # A function per chunk: its tensors are freed before the next chunk starts.
        _inputs_chunk(module, job, group, state, (n0, n1), capture, first, input_grad)
        if n0 == 0:  # the first chunk measured the model: now the estimate is sound
            _check_budget(job, group, state)
        n0 = n1


def _inputs_chunk(
    module: torch.nn.Module,
    job: Job,
    group: Group,
    state: _State,
    span: tuple[int, int],
    capture: tuple[str, ...],
    first: bool,
    input_grad: bool,
) -> None:
    (n0, n1), n = span, state.x.shape[0]
    xc = state.x[n0:n1].detach().requires_grad_(input_grad)
    with (
        torch.set_grad_enabled(group.grad),
        captured(module, capture) as acts,
        profiling(module, xc),
        rules_of(group.points, module),
    ):
        out = _forward(module, xc)
    if first:
        _keep_logits(job, state, out.detach(), n0, n)
    if not group.points.rule:  # the scores at these rows (deltas, GradientSHAP's ends)
        write(state.extra, "inputs_logits", out.detach(), slice(n0, n1), n)
    for layer in group.capture:
        write(state.acts, layer, acts[layer].detach(), slice(n0, n1), n)
    if group.grad:
        rows = {r.key: _rows(r, state, n0, n1, partial=first) for r in group.requests}
        wrts = {w: (xc if w is None else acts[w]) for w in group.wrt}
        grads = backward_by_source(_backward, group, out, acts, wrts, rows, job, state)
        for key, g in grads.items():
            write(state.grads, key, g, slice(n0, n1), n, dim=1)


def _keep_logits(job: Job, state: _State, logits: torch.Tensor, n0: int, n: int) -> None:
    if not state.nan_warned and logits.is_floating_point():
        bad = int((~torch.isfinite(logits)).sum())
        if bad:
            state.nan_warned = True
            warnings.warn(
                f"model: {bad} of its outputs at the inputs are NaN or infinite; the "
                "predicted class (argmax) and the attributions of those samples are "
                "meaningless",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
    if n0 == 0:
        if job.outputs is not None and logits.shape[1] != job.outputs:
            raise ValueError(
                f"classes: {job.outputs} class names were given, but the model has "
                f"{logits.shape[1]} outputs"
            )
        state.logits = logits.new_empty(n, logits.shape[1])
    state.logits[n0 : n0 + len(logits)] = logits  # type: ignore[index]


def _rows(
    req: Request, state: _State, n0: int, n1: int, partial: bool = False
) -> torch.Tensor | None:
    # Targets resolve at the inputs (their logits and labels), whichever points are evaluated.
    # While the inputs are still being evaluated (``partial``), only this chunk's logits exist.
    assert state.logits is not None
    if partial or req.key not in state.rows:
        where = slice(n0, n1) if partial else slice(None)
        labels = None if state.labels is None else state.labels[where]
        rows = class_rows(req.target, state.logits[where], labels, where)
        if not partial or rows is None:
            state.rows[req.key] = rows
        else:
            write(state.rows, req.key, rows, where, state.x.shape[0], dim=1)
        if partial:
            return rows
    rows = state.rows[req.key]
    return None if rows is None else rows[:, n0:n1]


def _backward(
    group: Group,
    outputs: torch.Tensor,
    wrts: dict[str | None, torch.Tensor],
    rows: dict[str, torch.Tensor | None],
    job: Job,
    state: _State,
    keep: bool = False,
) -> dict[str, torch.Tensor]:
    """:func:`~algebra.kernels.backward.backward` sized by the job's inputs and budget."""
    return backward(group, outputs, wrts, rows, job, state.x, state.budget, keep)


def _assemble(out: Output, job: Job, state: _State) -> TaskResult:
    if out.kind == "perturbation":
        values, classes, players = state.perturbed[out.request]
        return TaskResult(values, classes, players=players)
    if out.kind in ASSEMBLERS:
        return TaskResult(*ASSEMBLERS[out.kind](out, job, state))
    group, req = job.request(out.request)
    grads = state.grads[req.key]
    x = state.x
    if out.kind == "gradient":
        values = grads.abs() if out.absolute else grads
    elif out.kind == "times_input":
        values = grads * (x if out.layer is None else state.acts[out.layer])
    elif out.kind == "grad_cam":
        assert out.layer is not None
        values = grad_cam(
            grads,
            state.acts[out.layer],
            out.layer,
            out.relu,
            tuple(x.shape[2:]) if out.upsample else None,
            out.window,
        )
        return TaskResult(values, state.rows.get(req.key))
    else:
        path = group.points.path
        assert path is not None
        start, end = path_ends(path, out.layer, state)
        values = grads * (end - start)
        # f(x0): the path's start (an input path), or the baseline's pass (a layer path).
        at = ("starts", group.points.key) if out.layer is None else ("logits", path.baseline_key)
        delta = path_delta(out, req, values, at, state)
        what = "the inputs" if out.layer is None else f"layer {out.layer!r}"
        return TaskResult(inside(values, out.window, what), state.rows.get(req.key), delta)
    what = "the inputs" if out.layer is None else f"layer {out.layer!r}"
    return TaskResult(inside(values, out.window, what), state.rows.get(req.key))


# What the gradient family's runners borrow from the executor (kernels.runs).
_OPS = Ops(_forward, _backward, _rows, _per_chunk)

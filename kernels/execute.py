"""Execute a :class:`~algebra.kernels.plan.Job`: chunked forward and batched backward passes.

Groups run in order: the inputs (which give the logits that resolve data-dependent targets,
and the layer activations later passes need), then baselines, then integration paths.
Every group is cut into chunks that fit the memory budget; results stay on the model's
device.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .backward_strategy import sequential, sequential_rows
from .capture import captured, replaced
from .chunks import path_chunks, sample_chunks
from .compiled import fused_step
from .gradients import target_gradients
from .guard import device_of, guarded
from .memory import profiling
from .noise_runs import clean_logits, noised
from .ops import Ops
from .path_starts import record_starts, shared_start, start_rows
from .paths import alphas_and_weights, integrate, path_points
from .plan import ExecConfig, Group, Job, Output, PathSpec, Request
from .postprocess import grad_cam
from .runs import ASSEMBLERS, RUNNERS, path_delta, rules_of
from .sizing import budget_of, classes_of, rows_per_chunk, targets_per_backward
from .targets import class_rows, pack
from .unit_targets import backward_by_source, unit_layers
from .windows import inside, path_start


@dataclass
class TaskResult:
    """Attributions ``[T, N, ...]``, the classes attributed ``[T, N]`` (``None`` for callables)
    and, for methods with completeness, the convergence delta ``[T, N]``."""

    values: torch.Tensor
    classes: torch.Tensor | None
    delta: torch.Tensor | None = None


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
    device = device_of(module, default=job.inputs.device)
    x = job.inputs.to(device)
    labels = None if job.labels is None else job.labels.to(device)
    clean = x
    if job.noise is not None:  # every group on noisy copies, targets from the clean inputs
        job, x, labels = noised(job, x, labels)
    cfg = job.config
    state = _State(x, labels, budget_of(job, device))
    with guarded(module), _precision(cfg, device):
        if job.noise is not None:
            per_chunk = rows_per_chunk(job, job.groups[0], clean, state.budget, 1, len(clean))
            logits = clean_logits(job, clean, per_chunk, _forward)
            state.logits = logits.repeat(len(x) // len(clean), 1)
        elif job.reference is not None:
            state.logits = _reference_logits(job, state)
        for group in job.groups:
            if group.points.kind == "inputs":
                _run_inputs(module, job, group, state)
            elif group.points.kind == "baseline":
                _run_baseline(module, job, group, state)
            elif group.points.kind in RUNNERS:
                RUNNERS[group.points.kind](module, job, group, state, _OPS)
            else:
                _run_path(module, job, group, state)
    assert state.logits is not None
    tasks = {out.key: _assemble(out, job, state) for out in job.results}
    return JobResult(state.logits[: len(clean)], tasks)


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


def _per_chunk(job: Job, group: Group, state: _State, rows: int) -> int:
    classes = classes_of(job, state.x, state.logits)
    return rows_per_chunk(job, group, state.x, state.budget, classes, rows)


def _run_inputs(module: torch.nn.Module, job: Job, group: Group, state: _State) -> None:
    x, n = state.x, state.x.shape[0]
    first = state.logits is None
    units = unit_layers(group.requests)
    capture = tuple(dict.fromkeys([*group.capture, *(w for w in group.wrt if w), *units]))
    input_grad = None in group.wrt
    n0 = 0
    while n0 < n:
        n1 = min(n, n0 + _per_chunk(job, group, state, n))
        xc = x[n0:n1].detach().requires_grad_(input_grad)
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
            _write(state.extra, "inputs_logits", out.detach(), slice(n0, n1), n)
        for layer in group.capture:
            _write(state.acts, layer, acts[layer].detach(), slice(n0, n1), n)
        if group.grad:
            rows = {r.key: _rows(r, state, n0, n1, partial=first) for r in group.requests}
            wrts = {w: (xc if w is None else acts[w]) for w in group.wrt}
            grads = backward_by_source(_backward, group, out, acts, wrts, rows, job, state)
            for key, g in grads.items():
                _write(state.grads, key, g, slice(n0, n1), n, dim=1)
        del out, acts
        n0 = n1


def _keep_logits(job: Job, state: _State, logits: torch.Tensor, n0: int, n: int) -> None:
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
            _write(state.rows, req.key, rows, where, state.x.shape[0], dim=1)
        if partial:
            return rows
    rows = state.rows[req.key]
    return None if rows is None else rows[:, n0:n1]


def _write(
    store: dict, key: object, value: torch.Tensor, where: slice, n: int, dim: int = 0
) -> None:
    if key not in store:
        shape = list(value.shape)
        shape[dim] = n
        store[key] = value.new_zeros(shape)
    index = (slice(None),) * dim + (where,)
    store[key][index] = value


def _backward(
    group: Group,
    outputs: torch.Tensor,
    wrts: dict[str | None, torch.Tensor],
    rows: dict[str, torch.Tensor | None],
    job: Job,
    state: _State,
    keep: bool = False,
) -> dict[str, torch.Tensor]:
    """Gradients ``[T_r, B, ...]`` of every request of ``group`` from one forward's ``outputs``
    (``keep``: later backwards follow on the same graph)."""
    grads: dict[str, torch.Tensor] = {}
    classed = [r for r in group.requests if rows[r.key] is not None]
    callables = [r for r in group.requests if rows[r.key] is None]
    # Every backward but the last keeps the graph; the last frees activations as it goes.
    if classed and not group.fuse_targets:
        for i, req in enumerate(classed):
            more = keep or bool(callables) or i < len(classed) - 1
            (grads[req.key],) = target_gradients(
                outputs, (wrts[req.wrt],), rows[req.key], req.target, more, batched=False
            )
    elif classed:
        more = keep or bool(callables)
        grads.update(_fused_backward(group, classed, outputs, wrts, rows, more, job, state))
    for i, req in enumerate(callables):  # callable targets: one backward each
        (grads[req.key],) = target_gradients(
            outputs, (wrts[req.wrt],), None, req.target, keep or i < len(callables) - 1
        )
    return grads


def _fused_backward(
    group: Group,
    classed: list[Request],
    outputs: torch.Tensor,
    wrts: dict[str | None, torch.Tensor],
    rows: dict[str, torch.Tensor | None],
    more: bool,
    job: Job,
    state: _State,
) -> dict[str, torch.Tensor]:
    """One batched backward over the union of the requests' classes and all their layers
    (or one backward per target row, kernels.backward_strategy)."""
    batched = not sequential(job.module, outputs.device, job.config.backward)
    if batched:
        packed, slots = pack([rows[r.key] for r in classed], outputs.shape[1])  # type: ignore[misc]
    else:
        targets = [rows[r.key] for r in classed]
        packed, slots = sequential_rows(classed, targets, outputs.shape[1])  # type: ignore[arg-type]
    per_chunk = targets_per_backward(
        job, group, state.x, state.budget, len(packed), outputs.shape[0]
    )
    starts = range(0, len(packed), per_chunk)
    status: dict[str, bool] = {}
    parts = []
    for t in starts:
        keep = more or t != starts[-1]
        parts.append(
            target_gradients(
                outputs,
                tuple(wrts.values()),
                packed[t : t + per_chunk],
                classed[0].target,
                keep,
                batched=batched,
                trusted=_batching_works.get(job.module, False),
                status=status,
            )
        )
        if status.get("batched"):
            _batching_works[job.module] = True
    order = list(wrts)
    fused = [torch.cat(p) if len(p) > 1 else p[0] for p in zip(*parts, strict=True)]
    return {
        req.key: _gather(fused[order.index(req.wrt)], slot)
        for req, slot in zip(classed, slots, strict=True)
    }


# Models on which the batched (vmapped) backward is known to work.
_batching_works: weakref.WeakKeyDictionary[torch.nn.Module, bool] = weakref.WeakKeyDictionary()


def _gather(grads: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """Pick ``grads[slot[t, b], b]`` for each request row ``t`` and batch row ``b``."""
    if len(slot) == len(grads) and bool(
        (slot == torch.arange(len(grads), device=slot.device)[:, None]).all()
    ):
        return grads
    index = slot.reshape(*slot.shape, *([1] * (grads.ndim - 2))).expand(
        *slot.shape, *grads.shape[2:]
    )
    return grads.gather(0, index)


def _baseline_input(path_baseline: object, x: torch.Tensor) -> torch.Tensor:
    if isinstance(path_baseline, torch.Tensor):
        return path_baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
    return torch.full_like(x, float(path_baseline))  # type: ignore[arg-type]


def _run_baseline(module: torch.nn.Module, job: Job, group: Group, state: _State) -> None:
    path = group.points.path
    assert path is not None
    x, n = state.x, state.x.shape[0]
    base = path.baseline
    # A scalar (or batch-1) baseline is the same point for every sample: evaluate it once.
    shared = not isinstance(base, torch.Tensor) or base.ndim < x.ndim or base.shape[0] == 1
    points = _baseline_input(base, x[:1] if shared else x)
    for n0, n1 in sample_chunks(len(points), _per_chunk(job, group, state, len(points))):
        with torch.no_grad(), captured(module, group.capture) as acts:
            out = _forward(module, points[n0:n1])
        # The baseline's scores: integrated gradients' delta (kernels.assemble.path_delta).
        _write(state.extra, ("logits", path.baseline_key), out, slice(n0, n1), len(points))
        for layer in group.capture:
            act = acts[layer].expand(n, *acts[layer].shape[1:]) if shared else acts[layer]
            _write(
                state.baselines, (path.baseline_key, layer), act, slice(n0, n if shared else n1), n
            )


def _run_path(module: torch.nn.Module, job: Job, group: Group, state: _State) -> None:
    points_spec = group.points
    path = points_spec.path
    assert path is not None
    x, n = state.x, state.x.shape[0]
    layer = points_spec.layer
    units = unit_layers(group.requests)
    # Layers captured on the way: units, and layers differentiated along an input path.
    capture = tuple(dict.fromkeys([*(w for w in group.wrt if w and w != layer), *units]))
    start_all, end_all = _path_ends(path, layer, state)
    alphas, weights = alphas_and_weights(path.rule, path.steps)
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    per_chunk = _per_chunk(job, group, state, n * path.steps)
    for (s0, s1), (n0, n1) in path_chunks(path.steps, n, per_chunk):
        start, end = start_all[n0:n1], end_all[n0:n1]
        points = path_points(start, end, alphas[s0:s1]).requires_grad_(True)
        k = s1 - s0
        rows = {}
        for r in group.requests:
            sample_rows = _rows(r, state, n0, n1)
            rows[r.key] = None if sample_rows is None else sample_rows.repeat(1, k)
        with torch.enable_grad():
            if layer is None and not capture and _compilable(job, group, rows):
                assert state.logits is not None
                grads = _compiled_backward(module, group, points, rows, state.logits.shape[1])
                out = None
            else:
                # The start's scores (the delta) come with the first step of an input path.
                starts = (
                    None if layer is not None else start_rows(path, start_all, alphas, s0, n0, n1)
                )
                with captured(module, capture) as acts:
                    if layer is None:
                        batch = points if starts is None else torch.cat([points, starts])
                        out = _forward(module, batch)
                    else:
                        repeated = x[n0:n1].repeat(k, *([1] * (x.ndim - 1)))
                        with replaced(module, layer, points):
                            out = _forward(module, repeated)
                wrts = {w: points if w == layer else acts[w] for w in group.wrt}
                seen = acts
                if layer is None:
                    span, shared = (s0, n0, n1, n), shared_start(path, start_all)
                    key = ("starts", points_spec.key)
                    out, seen = record_starts(
                        state.extra, key, out, acts, len(points), alphas, span, shared
                    )
                grads = backward_by_source(_backward, group, out, seen, wrts, rows, job, state)
                grads = {key: g[:, : len(points)] for key, g in grads.items()}
        del out, points
        for key, g in grads.items():
            summed = integrate(g, w[s0:s1])
            if key in state.grads:
                state.grads[key][:, n0:n1] += summed
            else:
                _write(state.grads, key, summed, slice(n0, n1), n, dim=1)


def _path_ends(
    path: PathSpec, layer: str | None, state: _State
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end of a path, for all samples; a window holds the outside at the end."""
    if layer is None:
        start, end = _baseline_input(path.baseline, state.x), state.x
    else:
        start, end = state.baselines[(path.baseline_key, layer)], state.acts[layer]
    what = "the inputs" if layer is None else f"layer {layer!r}"
    return path_start(start, end, path.window, what), end


def _compilable(job: Job, group: Group, rows: dict[str, torch.Tensor | None]) -> bool:
    return job.config.compile and group.fuse_targets and all(r is not None for r in rows.values())


def _compiled_backward(
    module: torch.nn.Module,
    group: Group,
    points: torch.Tensor,
    rows: dict[str, torch.Tensor | None],
    classes: int,
) -> dict[str, torch.Tensor]:
    """The whole fused step (forward and batched backward) through ``torch.compile``."""
    packed, slots = pack(list(rows.values()), classes)  # type: ignore[arg-type]
    one_hot = torch.nn.functional.one_hot(packed, classes).to(points.dtype)
    _, grads = fused_step(module)(points.detach(), one_hot)
    return {r.key: _gather(grads, slot) for r, slot in zip(group.requests, slots, strict=True)}


def _assemble(out: Output, job: Job, state: _State) -> TaskResult:
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
        start, end = _path_ends(path, out.layer, state)
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

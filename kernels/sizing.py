"""How a job's groups run: rows, chunks and targets per backward (copies and batches for
a stream of perturbed copies, from :func:`~algebra.kernels.run_copies.copies_passes`).

The one description of a group's passes: the executor cuts its chunks with these functions
and ``explain()`` prints :func:`passes`, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .backward_strategy import sequential
from .guard import device_of
from .layouts import chunk_layout, extra_rows
from .memory import (
    Profile,
    chunk_rows,
    chunk_targets,
    default_budget,
    guessed_profile,
    known_profile,
    resident_bytes,
    results_bytes,
    row_bytes,
    spare_budget,
)
from .noise_runs import rows_view
from .path_starts import start_count
from .plan import Group, Job, Passes, Request
from .run_copies import copies_passes
from .unit_targets import is_unit, source_key


def budget_of(job: Job, device: torch.device) -> int | None:
    """The memory budget in bytes (``None`` when chunking is off).

    Examples
    --------
    >>> from algebra.kernels.plan import ExecConfig
    >>> budget_of(Job(None, None, config=ExecConfig(memory_budget=2**20)), torch.device("cpu"))
    1048576
    """
    if not job.config.chunk:
        return None
    return job.config.memory_budget or default_budget(device)


def profile_of(job: Job, x: torch.Tensor) -> Profile:
    """The measured profile of the job's model on ``x``'s shape, or a conservative guess.

    Examples
    --------
    >>> profile_of(Job(torch.nn.Linear(3, 2), None), torch.ones(2, 3)).measured
    False
    """
    return known_profile(job.module, x) or guessed_profile(x)


def point_bytes(x: torch.Tensor) -> int:
    """Bytes of one sample of ``x``.

    Examples
    --------
    >>> point_bytes(torch.ones(5, 3, 4))
    48
    """
    return x[0].numel() * x.element_size()


def wrt_bytes(group: Group, profile: Profile, x: torch.Tensor) -> int:
    """Bytes per sample of the tensors the group differentiates.

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("pred")),))
    >>> wrt_bytes(group, Profile(saved=0, largest=64), torch.ones(2, 3))
    12
    """
    return sum(
        point_bytes(x) if w is None else profile.layers.get(w, profile.largest) for w in group.wrt
    )


def target_count(group: Group, classes: int | None) -> int | None:
    """Targets of the group's one batched backward: classes, at most the number of
    classes (``None`` when they depend on an unknown number of classes), plus the units of
    each layer targeted (:mod:`~algebra.kernels.unit_targets`).

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("all")),))
    >>> target_count(group, 10), target_count(group, None)
    (10, None)
    >>> units = Request("u", TargetSpec("units", ("b3", "all", 32)))
    >>> target_count(Group(Points("inputs"), (*group.requests, units)), 10)
    42
    """
    units = {
        source_key(r.target): r.target.count(None) for r in group.requests if is_unit(r.target)
    }
    extra = sum(units.values())  # type: ignore[arg-type]
    kept = {  # requests of one target spec (on other layers) share its rows
        f"{r.target.kind}|{r.target.value!r}": r.target
        for r in group.requests
        if r.target.kind != "fn" and not is_unit(r.target)
    }
    counts = [target.count(classes) for target in kept.values()]
    if any(c is None for c in counts):
        return None if classes is None else classes + extra
    total = sum(c for c in counts if c is not None)
    return (min(total, classes) if classes else total) + extra


def fused_calls(
    job: Job,
    group: Group,
    x: torch.Tensor,
    budget: int | None,
    rows: int,
    classes: int | None,
    one_by_one: bool,
) -> int | None:
    """Backward calls per chunk of a fused group's class and unit targets, as the executor
    makes them: one per target row when sequential; else one batched backward per source of
    scores, split to fit the budget (``None`` when the count depends on unknown classes).

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> reqs = (Request("a", TargetSpec("topk", 2)), Request("b", TargetSpec("units", ("0", "all", 3))))
    >>> group = Group(Points("inputs"), reqs)
    >>> job = Job(torch.nn.Sequential(torch.nn.Linear(3, 4)), None)
    >>> fused_calls(job, group, torch.ones(2, 3), None, 2, 4, False), fused_calls(job, group, torch.ones(2, 3), None, 2, 4, True)
    (2, 5)
    """
    if not group.grad or not group.fuse_targets:
        return 0
    sources: dict[str, list[Request]] = {}
    for req in group.requests:
        if req.target.kind != "fn":
            sources.setdefault(source_key(req.target) if is_unit(req.target) else "", []).append(
                req
            )
    total = 0
    for requests in sources.values():
        part = replace(group, requests=tuple(requests))
        count = target_count(part, classes)
        if count is None:
            return None
        per = 1 if one_by_one else targets_per_backward(job, part, x, budget, count, rows)
        total += -(-count // per)
    return total


def score_sources(group: Group) -> int:
    """Sources of scores the group's class targets differentiate, each with its own
    backward: the logits, and each layer's units (:mod:`~algebra.kernels.unit_targets`).

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> reqs = (Request("a", TargetSpec("all")), Request("b", TargetSpec("units", ("b3", "all", 4))))
    >>> score_sources(Group(Points("inputs"), reqs))
    2
    """
    keys = {
        source_key(r.target) if is_unit(r.target) else ""
        for r in group.requests
        if r.target.kind != "fn"
    }
    return len(keys)


def target_estimate(group: Group, classes: int) -> int:
    """Targets per batched backward before splitting: 1 unless targets are fused.

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("topk", 3)),))
    >>> target_estimate(group, 10), target_estimate(group, 2)
    (3, 2)
    """
    if not group.fuse_targets:
        return 1
    return max(1, target_count(group, classes) or 0)


def classes_of(job: Job, x: torch.Tensor, logits: torch.Tensor | None = None) -> int:
    """The number of model outputs: from logits, class names, a profile, or a guess of 10.

    Examples
    --------
    >>> classes_of(Job(torch.nn.Linear(3, 2), None, outputs=2), torch.ones(1, 3))
    2
    """
    if logits is not None:
        return logits.shape[1]
    profile = known_profile(job.module, x)
    return job.outputs or (profile.classes if profile and profile.classes else 10)


def known_classes(job: Job) -> int | None:
    """The number of model outputs if known (class names, or a measured forward).

    Examples
    --------
    >>> known_classes(Job(torch.nn.Linear(3, 7), torch.ones(2, 3), outputs=7))
    7
    """
    if job.outputs is not None:
        return job.outputs
    device = device_of(job.module, default=job.inputs.device)
    profile = known_profile(job.module, job.inputs[:1].to(device))
    return profile.classes if profile is not None else None


def rows_per_chunk(
    job: Job, group: Group, x: torch.Tensor, budget: int | None, classes: int, rows: int
) -> int:
    """Rows of ``group`` evaluated per chunk under ``budget``.

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("pred")),))
    >>> job = Job(torch.nn.Linear(3, 2), None)
    >>> rows_per_chunk(job, group, torch.ones(100, 3), None, 2, 100)
    100
    """
    profile = profile_of(job, x)
    per_row = row_bytes(
        profile,
        point_bytes(x),
        wrt_bytes(group, profile, x),
        target_estimate(group, classes),
        group.grad,
    )
    return chunk_rows(rows, per_row, spare_budget(job, profile, x, budget, classes))


def targets_per_backward(
    job: Job, group: Group, x: torch.Tensor, budget: int | None, targets: int, rows: int
) -> int:
    """Targets per batched backward after a forward of ``rows`` rows.

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("all")),))
    >>> targets_per_backward(Job(torch.nn.Linear(3, 2), None), group, torch.ones(4, 3), None, 2, 4)
    2
    """
    profile = profile_of(job, x)
    spare = spare_budget(job, profile, x, budget, classes_of(job, x))
    return chunk_targets(
        targets, rows, profile, point_bytes(x), wrt_bytes(group, profile, x), spare
    )


def group_rows(group: Group, x: torch.Tensor) -> int:
    """Rows one group evaluates: samples x steps (one row for a shared baseline).

    Examples
    --------
    >>> from algebra.kernels.plan import PathSpec, Points
    >>> path = PathSpec(8, "gausslegendre", 0.0, "0.0")
    >>> group_rows(Group(Points("path", path)), torch.ones(4, 3))
    32
    """
    n = x.shape[0]
    if group.points.kind == "baseline":
        base = group.points.path.baseline  # type: ignore[union-attr]
        per_sample = isinstance(base, torch.Tensor) and base.ndim == x.ndim and base.shape[0] > 1
        return n if per_sample else 1
    return n * group.points.steps


def shortfall(
    job: Job, group: Group, x: torch.Tensor, budget: int | None, classes: int
) -> tuple[str, int, int, int, int] | None:
    """When even one row of ``group`` (or the results) cannot fit ``budget``: what the pass
    is, the budget, the bytes held across chunks, one row's bytes and the results' bytes
    (:func:`~algebra.kernels.memory.warn_over_budget`'s arguments); else ``None``.

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("all")),))
    >>> job = Job(torch.nn.Linear(300, 10), torch.ones(4, 300), groups=(group,))
    >>> shortfall(job, group, job.inputs, 10**9, 10) is None
    True
    >>> what, budget, *_ = shortfall(job, group, job.inputs, 1000, 10); what, budget
    ('the inputs pass', 1000)
    """
    if budget is None:
        return None
    profile = profile_of(job, x)
    wrt = wrt_bytes(group, profile, x)
    targets = target_estimate(group, classes) if group.grad else 0
    # One row, one target per backward, and the buffer gathering every target's gradient.
    one_row = row_bytes(profile, point_bytes(x), wrt, 1, group.grad) + (targets > 1) * targets * wrt
    resident = resident_bytes(job, profile, x, classes)
    results = results_bytes(job, profile, x, classes)
    if resident + max(one_row, results) <= budget:
        return None
    kind = group.points.kind
    what = "the inputs pass" if kind == "inputs" else f"the {kind} pass"
    return what, budget, resident, one_row, results


def passes(job: Job) -> tuple[list[Passes], bool]:
    """Each group's passes as the executor will run them, and whether the chunks rest on
    measured activation sizes (the first forward measures them; before that, a
    conservative guess).

    Examples
    --------
    >>> from algebra.kernels.plan import Points, Request, TargetSpec
    >>> job = Job(torch.nn.Linear(3, 2), torch.ones(4, 3),
    ...           groups=(Group(Points("inputs"), (Request("r", TargetSpec("pred")),)),))
    >>> described, measured = passes(job)
    >>> described[0].rows, described[0].chunks, described[0].targets, measured
    (4, 1, 1, False)
    """
    device = device_of(job.module, default=job.inputs.device)
    x = job.inputs[:1].to(device)
    budget = budget_of(job, device)
    measured = budget is None or known_profile(job.module, x) is not None
    classes = classes_of(job, x)  # chunks are sized for a guess while classes are unknown
    known = known_classes(job)
    inputs = rows_view(job)  # S x N rows on noisy copies
    out = []
    for i, group in enumerate(job.groups):
        if group.points.kind == "copies":  # a stream of perturbed copies, no gradients
            out.append(copies_passes(job, group, budget))
            continue
        rows = group_rows(group, inputs)
        per_chunk = rows_per_chunk(job, group, x, budget, classes, rows)
        chunks, chunk_size = chunk_layout(group, rows, per_chunk)
        estimate = target_estimate(group, classes) if group.grad else 0
        per_backward = (
            targets_per_backward(job, group, x, budget, estimate, chunk_size) if estimate else 0
        )
        short = shortfall(job, group, x, budget, classes)
        needed = None if short is None else short[2] + max(short[3], short[4])
        extra = []
        if i == 0 and job.noise is not None:  # the clean inputs' logits resolve the targets
            n = job.inputs.shape[0]
            extra.append(("clean inputs", n, -(-n // rows_per_chunk(job, group, x, budget, 1, n))))
        for what, count in extra_rows(group, inputs.shape[0]):
            cap = rows_per_chunk(job, group, x, budget, classes, count)
            extra.append((what, count, -(-count // cap)))
        rows += start_count(group.points, inputs)  # an input path's start, for the delta
        targets = target_count(group, known)
        passes_ = Passes(rows, chunk_size, chunks, targets, per_backward, needed)
        one_by_one = sequential(job.module, device, job.config.backward)
        calls = fused_calls(job, group, x, budget, chunk_size, known, one_by_one)
        passes_ = replace(
            passes_, sequential=one_by_one, sources=score_sources(group), backwards=calls
        )
        out.append(replace(passes_, extra=tuple(extra)))
    return out, measured

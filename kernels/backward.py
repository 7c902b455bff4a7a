"""The backward passes after one forward: fused over targets and layers, or one per target.

:func:`backward` differentiates every request of a group from one forward's outputs: one
batched backward over the union of the requests' classes (cut into several when the
memory budget asks), one backward per target when fusion is off, one per callable
target. :func:`compiled_backward` runs the whole fused step through ``torch.compile``.
"""

from __future__ import annotations

import weakref

import torch

from .backward_strategy import sequential, sequential_rows
from .compiled import fused_step
from .gradients import check_differentiable, target_gradients
from .plan import Group, Job, Request
from .sizing import targets_per_backward
from .targets import pack


def backward(
    group: Group,
    outputs: torch.Tensor,
    wrts: dict[str | None, torch.Tensor],
    rows: dict[str, torch.Tensor | None],
    job: Job,
    x: torch.Tensor,
    budget: int | None,
    keep: bool = False,
) -> dict[str, torch.Tensor]:
    """Gradients ``[T_r, B, ...]`` of every request of ``group`` from one forward's ``outputs``.

    ``x`` (the job's inputs) and ``budget`` size the batched backward's target chunks;
    ``keep`` keeps the graph for later backwards on the same forward (a layer's units).

    Examples
    --------
    >>> from algebra.kernels.plan import Points, TargetSpec
    >>> net = torch.nn.Linear(3, 2)
    >>> x = torch.ones(4, 3, requires_grad=True)
    >>> group = Group(Points("inputs"), [Request("r", TargetSpec("index", 1))])
    >>> rows = {"r": torch.ones(1, 4, dtype=torch.long)}
    >>> g = backward(group, net(x), {None: x}, rows, Job(net, x), x, None)["r"]
    >>> torch.equal(g[0], net.weight[1].detach().expand(4, 3))
    True
    """
    check_differentiable(outputs, wrts)
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
        fused = _fused_backward(group, classed, outputs, wrts, rows, more, job, x, budget)
        grads.update(fused)
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
    x: torch.Tensor,
    budget: int | None,
) -> dict[str, torch.Tensor]:
    """One batched backward over the union of the requests' classes and all their layers
    (or one backward per target row: :mod:`~algebra.kernels.backward_strategy`)."""
    batched = not sequential(job.module, outputs.device, job.config.backward)
    if batched:
        packed, slots = pack([rows[r.key] for r in classed], outputs.shape[1])  # type: ignore[misc]
    else:
        targets = [rows[r.key] for r in classed]
        packed, slots = sequential_rows(classed, targets, outputs.shape[1])  # type: ignore[arg-type]
    per_chunk = targets_per_backward(job, group, x, budget, len(packed), outputs.shape[0])
    starts = range(0, len(packed), per_chunk)
    status: dict[str, bool] = {}
    fused: list[torch.Tensor] = []
    for t in starts:
        keep = more or t != starts[-1]
        part = target_gradients(
            outputs,
            tuple(wrts.values()),
            packed[t : t + per_chunk],
            classed[0].target,
            keep,
            batched=batched,
            trusted=_batching_works.get(job.module, False),
            status=status,
        )
        if status.get("batched"):
            _batching_works[job.module] = True
        if len(starts) == 1:
            fused = list(part)
            break
        if not fused:  # several backwards: write each into place (no list, no cat copy)
            fused = [g.new_empty(len(packed), *g.shape[1:]) for g in part]
        for whole, g in zip(fused, part, strict=True):
            whole[t : t + len(g)] = g
        del part
    order = list(wrts)
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


def compilable(job: Job, group: Group, rows: dict[str, torch.Tensor | None]) -> bool:
    """Whether the fused step of ``group`` can run compiled (option on, classes known).

    Examples
    --------
    >>> from algebra.kernels.plan import Points
    >>> compilable(Job(None, None), Group(Points("inputs")), {})
    False
    """
    return job.config.compile and group.fuse_targets and all(r is not None for r in rows.values())


def compiled_backward(
    module: torch.nn.Module,
    group: Group,
    points: torch.Tensor,
    rows: dict[str, torch.Tensor | None],
    classes: int,
) -> dict[str, torch.Tensor]:
    """The whole fused step (forward and batched backward) through ``torch.compile``.

    Examples
    --------
    >>> from algebra.kernels.plan import Points, TargetSpec
    >>> net = torch.nn.Linear(3, 2).requires_grad_(False)
    >>> group = Group(Points("inputs"), [Request("r", TargetSpec("index", 1))])
    >>> rows = {"r": torch.ones(1, 4, dtype=torch.long)}
    >>> g = compiled_backward(net, group, torch.ones(4, 3), rows, 2)["r"]  # doctest: +SKIP
    """
    packed, slots = pack(list(rows.values()), classes)  # type: ignore[arg-type]
    one_hot = torch.nn.functional.one_hot(packed, classes).to(points.dtype)
    _, grads = fused_step(module)(points.detach(), one_hot)
    return {r.key: _gather(grads, slot) for r, slot in zip(group.requests, slots, strict=True)}

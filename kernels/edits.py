"""What-if inputs: patches, replacements and user functions applied to a batch, lazily."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .plan import Edited, Job
from .windows import window_mask


def materialize(inputs: Any, made: dict[str, Any] | None = None) -> Any:
    """The tensor an :class:`~algebra.kernels.plan.Edited` describes (other values as given).

    ``made`` holds edits already made in this computation, by key: each is made once.

    Examples
    --------
    >>> x = torch.zeros(1, 1, 3, 3)
    >>> materialize(Edited(x, "patch", (0, 2, 0, 2), 1.0))[0, 0]
    tensor([[1., 1., 0.],
            [1., 1., 0.],
            [0., 0., 0.]])
    >>> materialize(Edited(x, "fn", None, lambda t: t + 2)).mean().item()
    2.0
    """
    if not isinstance(inputs, Edited):
        return inputs
    made = {} if made is None else made
    if inputs.key and inputs.key in made:
        return made[inputs.key]
    out = _make(inputs, made)
    if inputs.key:
        made[inputs.key] = out
    return out


def _make(inputs: Edited, made: dict[str, Any]) -> torch.Tensor:
    base = materialize(inputs.base, made)
    if inputs.kind == "fn":
        with torch.no_grad():
            out = inputs.value(base.clone())
        if not isinstance(out, torch.Tensor) or out.shape != base.shape or out.dtype != base.dtype:
            got = (
                f"{out.dtype} {list(out.shape)}"
                if isinstance(out, torch.Tensor)
                else type(out).__name__
            )
            raise ValueError(
                f"fn: the edit must return a tensor of the inputs' dtype and shape "
                f"{base.dtype} {list(base.shape)}; got {got}"
            )
        return out.detach()
    assert inputs.window is not None
    mask = window_mask(tuple(base.shape), inputs.window, batch=1).to(base.device)
    if inputs.kind == "patch":
        value = inputs.value
        if isinstance(value, torch.Tensor):
            value = _spread(value.to(base.device, base.dtype), base, inputs.window)
        return (
            torch.where(mask, value, base)
            if isinstance(value, torch.Tensor)
            else (base.masked_fill(mask, float(value)))
        )
    other = materialize(inputs.value, made).to(base.device, base.dtype)
    return torch.where(mask, other, base)


def _spread(
    value: torch.Tensor, base: torch.Tensor, window: tuple[int, int, int, int]
) -> torch.Tensor:
    # A patch shaped like the window is placed in it; anything else broadcasts to the batch.
    r0, r1, c0, c1 = window
    if value.ndim >= 2 and tuple(value.shape[-2:]) == (r1 - r0, c1 - c0):
        full = base.new_zeros(base.shape)
        full[..., r0:r1, c0:c1] = value
        return full
    return value.expand_as(base)


def materialize_job(job: Job, made: dict[str, Any] | None = None) -> Job:
    """``job`` with its inputs and path baselines made tensors (edits applied).

    Pass one ``made`` dict to every job of a computation so each edit is made once.

    Examples
    --------
    >>> job = Job(torch.nn.Identity(), Edited(torch.zeros(1, 1, 2, 2), "patch", (0, 1, 0, 1), 5.0))
    >>> materialize_job(job).inputs.sum().item()
    5.0
    """
    made = {} if made is None else made
    return _each_input(job, lambda spec: materialize(spec, made))


def stand_in(job: Job) -> Job:
    """``job`` with every edit replaced by the unedited tensor it starts from.

    Edits keep the shape, dtype and device, which is all that planning and ``explain()``
    need: a user's edit function does not run just to show a plan.

    Examples
    --------
    >>> x = torch.zeros(1, 1, 2, 2)
    >>> stand_in(Job(torch.nn.Identity(), Edited(x, "fn", None, print))).inputs is x
    True
    """
    return _each_input(job, _root)


def _root(spec: Any) -> Any:
    while isinstance(spec, Edited):
        spec = spec.base
    return spec


def _each_input(job: Job, make: Any) -> Job:
    groups = []
    for group in job.groups:
        path = group.points.path
        if path is not None and isinstance(path.baseline, Edited):
            made_path = replace(path, baseline=make(path.baseline))
            group = replace(group, points=replace(group.points, path=made_path))
        groups.append(group)
    return replace(job, inputs=make(job.inputs), groups=tuple(groups))

"""What-if inputs: patches, replacements and user functions applied to a batch, lazily."""

from __future__ import annotations

from typing import Any

import torch

from .plan import Edited, Job
from .windows import window_mask


def materialize(inputs: Any) -> Any:
    """The tensor an :class:`~algebra.kernels.plan.Edited` describes (other values as given).

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
    base = materialize(inputs.base)
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
    other = materialize(inputs.value).to(base.device, base.dtype)
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


def materialize_job(job: Job) -> Job:
    """Make ``job``'s inputs and path baselines tensors (edits applied), in place.

    Examples
    --------
    >>> job = Job(torch.nn.Identity(), Edited(torch.zeros(1, 1, 2, 2), "patch", (0, 1, 0, 1), 5.0))
    >>> materialize_job(job).inputs.sum().item()
    5.0
    """
    from dataclasses import replace

    job.inputs = materialize(job.inputs)
    for group in job.groups:
        path = group.points.path
        if path is not None and isinstance(path.baseline, Edited):
            made = replace(path, baseline=materialize(path.baseline))
            group.points = replace(group.points, path=made)
    return job
